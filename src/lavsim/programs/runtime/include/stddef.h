#ifndef _LAV_STDDEF_H
#define _LAV_STDDEF_H
typedef unsigned int size_t;
typedef int ptrdiff_t;
typedef int ssize_t;
#ifndef __cplusplus
typedef long wchar_t;
#endif
#define NULL ((void *)0)
#define offsetof(t, m) __builtin_offsetof(t, m)
#endif
