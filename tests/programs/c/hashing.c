/* CRC-32, FNV-1a, 64-bit arithmetic (libgcc's division helpers), switch tables, varargs. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint32_t crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1));
    }
    return ~c;
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
    return h;
}

static const char *kind(int c) {
    switch (c) {
    case 0: return "zero"; case 1: return "one"; case 2: return "two"; case 3: return "three";
    case 4: return "four"; case 5: return "five"; case 6: return "six"; case 7: return "seven";
    case 8: return "eight"; case 9: return "nine";
    default: return "many";
    }
}

static long long sum(int n, ...) {
    va_list ap;
    va_start(ap, n);
    long long t = 0;
    for (int k = 0; k < n; k++) t += va_arg(ap, long long);
    va_end(ap);
    return t;
}

int main(void) {
    const char *text = "The quick brown fox jumps over the lazy dog";
    printf("crc32 %08x\n", crc32((const unsigned char *)text, strlen(text)));
    printf("fnv %016llx\n", (unsigned long long)fnv1a64(text));
    uint64_t a = 0xfedcba9876543210ULL, b = 0x12345677ULL;
    int64_t sa = -(int64_t)0x123456789abcLL, sb = 977;
    printf("udiv %llu umod %llu\n", (unsigned long long)(a / b), (unsigned long long)(a % b));
    printf("sdiv %lld smod %lld\n", (long long)(sa / sb), (long long)(sa % sb));
    for (int s = 0; s < 64; s += 13)
        printf("shl %d %llx shr %llx sar %llx\n", s, (unsigned long long)(a << s),
               (unsigned long long)(a >> s), (unsigned long long)(sa >> s));
    uint64_t m = a * b + (a >> 3);
    printf("mul %llu\n", (unsigned long long)m);
    for (int k = 0; k < 12; k += 3) printf("%s ", kind(k));
    printf("\nsum %lld\n", sum(4, 1LL, -5LL, 10000000000LL, 3LL));
    unsigned bits = 0;
    for (unsigned k = 1; k < 100000; k *= 3) bits ^= k << (k % 7);
    printf("bits %u %d\n", bits, __builtin_popcount(bits));
    return (int)(crc32((const unsigned char *)"x", 1) & 0x3f);
}
