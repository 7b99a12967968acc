/* Sorting, structs by value, function pointers, recursion (native oracle program). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct point { int x, y; char tag; };

static struct point make(int k) {
    struct point p = {(k * 37) % 23 - 11, (k * 53) % 19, (char)('a' + k % 26)};
    return p;
}

static int by_x(const void *a, const void *b) {
    const struct point *p = a, *q = b;
    if (p->x != q->x) return p->x - q->x;
    return p->y - q->y;
}

static int by_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static int ackermann(int m, int n) {
    if (m == 0) return n + 1;
    if (n == 0) return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

static struct point shift(struct point p, int dx) { p.x += dx; return p; }

typedef int (*op_fn)(int, int);
static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }

int main(void) {
    struct point pts[24];
    for (int k = 0; k < 24; k++) pts[k] = make(k);
    qsort(pts, 24, sizeof pts[0], by_x);
    for (int k = 0; k < 24; k++) printf("(%d,%d,%c)%s", pts[k].x, pts[k].y, pts[k].tag,
                                         k % 8 == 7 ? "\n" : " ");
    int v[50];
    unsigned s = 12345;
    for (int k = 0; k < 50; k++) { s = s * 1103515245u + 12345u; v[k] = (int)(s >> 8) % 1000 - 500; }
    qsort(v, 50, sizeof v[0], by_int);
    for (int k = 0; k < 50; k += 7) printf("%d ", v[k]);
    int key = v[21];
    int *found = bsearch(&key, v, 50, sizeof v[0], by_int);
    printf("\nfound %d at %d\n", key, (int)(found - v));
    printf("fib(15)=%d ack(2,3)=%d\n", fib(15), ackermann(2, 3));
    struct point p = shift(pts[3], 100);
    printf("shift %d %d %c\n", p.x, p.y, p.tag);
    op_fn ops[] = {add, sub, mul};
    int acc = 7;
    for (int k = 0; k < 9; k++) acc = ops[k % 3](acc, k + 2);
    printf("ops %d\n", acc);
    return acc & 0x7f;
}
