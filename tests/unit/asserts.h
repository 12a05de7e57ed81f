/*
 * asserts.h - assertions the unit tests share beyond cmocka's own. Include
 * after cmocka.h and <string.h>.
 */
#ifndef TMAP_TEST_ASSERTS_H
#define TMAP_TEST_ASSERTS_H

/* haystack (a message, a page) contains needle; a NULL haystack fails. */
#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!h_ || !strstr(h_, n_))                                                                \
            fail_msg("expected \"%s\" in:\n%s", n_, h_ ? h_ : "(null)");                           \
    } while (0)

#endif
