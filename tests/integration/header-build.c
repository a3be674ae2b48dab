/* header-build.c - compiled as C11 and as C++11 with -pedantic -Werror by
 * header-build.sh: chargan.h must stand alone (it is the only include), be
 * warning-free in both languages and give C linkage in C++ (this links and
 * runs against the built library). */
#include <chargan.h>

int main(void)
{
    chargan_tokenizer_options opts;
    chargan_tokenizer *tok = NULL;
    int bad = 0;

    chargan_tokenizer_options_init(&opts);
    if (chargan_tokenizer_new(&opts, &tok) != CHARGAN_OK)
        bad = 1;
    chargan_tokenizer_free(tok);
    if (chargan_version_number() != CHARGAN_VERSION_NUMBER)
        bad = 1;
    if (chargan_version()[0] != CHARGAN_VERSION_STRING[0])
        bad = 1;
    return bad;
}
