/* <stdio.h> of lavsim's C runtime: printf and friends format into a buffer (vsnprintf), then
   printf writes it to the console in one system call. Conversions d i u x X o c s p %; flags
   - 0 + space #; width and precision (also *); lengths hh h l ll z j t. */
#include <stdio.h>
#include <string.h>

void __lav_write(const char *buf, int len);

struct out { char *buf; size_t cap; size_t len; };

static void put(struct out *o, char c) {
    if (o->len + 1 < o->cap) o->buf[o->len] = c;
    o->len++;
}

static void pad(struct out *o, char c, int n) {
    while (n-- > 0) put(o, c);
}

static void number(struct out *o, unsigned long long v, int neg, int base, int upper,
                   int left, int zero, int plus, int space, int alt, int width, int prec) {
    char digits[24];
    int n = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    if (v == 0 && prec != 0) digits[n++] = '0';
    while (v) {
        digits[n++] = set[v % (unsigned)base];
        v /= (unsigned)base;
    }
    char sign = neg ? '-' : plus ? '+' : space ? ' ' : 0;
    const char *prefix = "";
    if (alt && base == 16 && n && !(n == 1 && digits[0] == '0')) prefix = upper ? "0X" : "0x";
    if (alt && base == 8 && (n == 0 || digits[n - 1] != '0')) prefix = "0";
    int zeros = prec > n ? prec - n : 0;
    int total = n + zeros + (sign != 0) + (int)strlen(prefix);
    if (prec >= 0) zero = 0;
    if (!left && !zero) pad(o, ' ', width - total);
    if (sign) put(o, sign);
    for (const char *p = prefix; *p; p++) put(o, *p);
    if (!left && zero) pad(o, '0', width - total);
    pad(o, '0', zeros);
    while (n) put(o, digits[--n]);
    if (left) pad(o, ' ', width - total);
}

int vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap) {
    struct out o = {buf, cap, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        int left = 0, zero = 0, plus = 0, space = 0, alt = 0;
        for (;; fmt++) {
            if (*fmt == '-') left = 1;
            else if (*fmt == '0') zero = 1;
            else if (*fmt == '+') plus = 1;
            else if (*fmt == ' ') space = 1;
            else if (*fmt == '#') alt = 1;
            else break;
        }
        int width = 0, prec = -1;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) left = 1, width = -width;
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        }
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                fmt++;
            } else {
                while (*fmt >= '0' && *fmt <= '9') prec = prec * 10 + (*fmt++ - '0');
            }
        }
        int lng = 0;  /* 0 int, 1 long, 2 long long, -1 short, -2 char */
        for (;; fmt++) {
            if (*fmt == 'l') lng = lng == 1 ? 2 : 1;
            else if (*fmt == 'h') lng = lng == -1 ? -2 : -1;
            else if (*fmt == 'z' || *fmt == 'j' || *fmt == 't') lng = *fmt == 'j' ? 2 : 1;
            else break;
        }
        char c = *fmt;
        if (!c) break;
        if (c == 'd' || c == 'i') {
            long long v = lng == 2 ? va_arg(ap, long long) : (long long)va_arg(ap, int);
            if (lng == -1) v = (short)v;
            if (lng == -2) v = (signed char)v;
            unsigned long long mag = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
            number(&o, mag, v < 0, 10, 0, left, zero, plus, space, 0, width, prec);
        } else if (c == 'u' || c == 'x' || c == 'X' || c == 'o') {
            unsigned long long v = lng == 2 ? va_arg(ap, unsigned long long)
                                            : (unsigned long long)va_arg(ap, unsigned int);
            if (lng == -1) v = (unsigned short)v;
            if (lng == -2) v = (unsigned char)v;
            int base = c == 'u' ? 10 : c == 'o' ? 8 : 16;
            number(&o, v, 0, base, c == 'X', left, zero, 0, 0, alt, width, prec);
        } else if (c == 'p') {
            unsigned long long v = (unsigned int)va_arg(ap, void *);
            if (!v) {
                /* glibc prints "(nil)" */
                const char *s = "(nil)";
                if (!left) pad(&o, ' ', width - 5);
                for (; *s; s++) put(&o, *s);
                if (left) pad(&o, ' ', width - 5);
            } else {
                number(&o, v, 0, 16, 0, left, 0, plus, space, 1, width, -1);
            }
        } else if (c == 'c') {
            if (!left) pad(&o, ' ', width - 1);
            put(&o, (char)va_arg(ap, int));
            if (left) pad(&o, ' ', width - 1);
        } else if (c == 's') {
            const char *s = va_arg(ap, const char *);
            if (!s) s = "(null)";
            int n = (int)(prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s));
            if (!left) pad(&o, ' ', width - n);
            for (int k = 0; k < n; k++) put(&o, s[k]);
            if (left) pad(&o, ' ', width - n);
        } else {
            put(&o, c);  /* %% and anything unknown */
        }
    }
    if (cap) buf[o.len < cap ? o.len : cap - 1] = 0;
    return (int)o.len;
}

int snprintf(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

int sprintf(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, 0x7fffffff, fmt, ap);
    va_end(ap);
    return r;
}

int vprintf(const char *fmt, va_list ap) {
    char buf[512];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < (int)sizeof buf) {
        __lav_write(buf, n);
    } else {
        /* too long for the stack buffer: format again in pieces of the heap-free kind */
        char big[4096];
        int m = vsnprintf(big, sizeof big, fmt, copy);
        __lav_write(big, m < (int)sizeof big ? m : (int)sizeof big - 1);
    }
    va_end(copy);
    return n;
}

int printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vprintf(fmt, ap);
    va_end(ap);
    return r;
}

int putchar(int c) {
    char ch = (char)c;
    __lav_write(&ch, 1);
    return (unsigned char)c;
}

int puts(const char *s) {
    __lav_write(s, (int)strlen(s));
    __lav_write("\n", 1);
    return 1;
}

int fflush(void *stream) {
    (void)stream;
    return 0;
}
