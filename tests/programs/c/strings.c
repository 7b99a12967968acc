/* String functions, printf formats, snprintf, strtol, ctype, the heap. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char buf[64];
    strcpy(buf, "hello");
    strcat(buf, ", world");
    printf("[%s] len %u cmp %d %d\n", buf, (unsigned)strlen(buf), strcmp(buf, "hello") > 0,
           strncmp(buf, "help", 3) == 0);
    printf("chr %s rchr %s str %s\n", strchr(buf, 'o'), strrchr(buf, 'o'), strstr(buf, "wor"));
    printf("spn %u cspn %u\n", (unsigned)strspn("aabbc", "ab"), (unsigned)strcspn("xyz,w", ","));
    char copy[16];
    memset(copy, '*', sizeof copy);
    strncpy(copy, "abc", 5);
    printf("ncpy %d %d %c\n", copy[3], copy[4], copy[5]);
    memmove(buf + 2, buf, 5);
    printf("move %s\n", buf);
    printf("|%5d|%-5d|%05d|%+d|% d|%x|%X|%#x|%o|%#o|\n", 42, 42, 42, 42, 42, 255, 255, 255, 8, 8);
    printf("|%c|%5s|%-5s|%.2s|%%|%u|%hd|%hhu|\n", 'q', "ab", "ab", "abcdef", 4000000000u,
           (short)70000, (unsigned char)300);
    printf("|%ld|%lu|%lld|%llu|%llx|\n", -123456789L, 3000000000UL, -9000000000LL,
           18000000000000000000ULL, 0xdeadbeefcafeULL);
    printf("|%*d|%-*d|%.3d|%8.3d|\n", 6, 7, 6, 7, 7, 7);
    int n = snprintf(buf, 10, "%s-%d", "truncated", 12345);
    printf("snprintf %d [%s]\n", n, buf);
    char *end;
    printf("strtol %ld %ld %ld %ld\n", strtol("  -1234xyz", &end, 10), strtol("0x1f", NULL, 0),
           strtol("777", NULL, 8), strtol("zz", NULL, 36));
    printf("end [%s] atoi %d abs %d\n", end, atoi("  56 "), abs(-77));
    int up = 0, dig = 0, sp = 0;
    for (const char *p = "Hello World 123\tX"; *p; p++) {
        up += isupper((unsigned char)*p);
        dig += isdigit((unsigned char)*p) != 0;
        sp += isspace((unsigned char)*p) != 0;
    }
    printf("ctype %d %d %d %c%c\n", up != 0, dig, sp, toupper('a'), tolower('Q'));
    int *a = calloc(100, sizeof(int));
    int zero = 1;
    for (int k = 0; k < 100; k++) zero &= a[k] == 0;
    char **words = malloc(10 * sizeof(char *));
    for (int k = 0; k < 10; k++) {
        words[k] = malloc((size_t)k + 2);
        memset(words[k], 'a' + k, (size_t)k + 1);
        words[k][k + 1] = 0;
    }
    for (int k = 0; k < 10; k += 2) free(words[k]);
    for (int k = 0; k < 10; k += 2) words[k] = strdup("re");
    for (int k = 0; k < 10; k++) printf("%s ", words[k]);
    printf("\ncalloc zero %d\n", zero);
    free(a);
    return 0;
}
