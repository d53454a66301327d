/* Includes for cmocka 1.1.5, which needs these before <cmocka.h>. */
#ifndef TD_TEST_H
#define TD_TEST_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#endif
