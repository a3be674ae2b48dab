/* consumer.c - a program built against an installed libchargan with nothing
 * but `pkg-config --cflags --libs chargan` (see install-consumer.sh). */
#include <chargan.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    static const char text[] = "to be or not to be\n";
    chargan_tokenizer *tok = NULL;
    int32_t ids[sizeof text];
    char back[sizeof text];
    size_t n_ids = 0, len = 0;
    chargan_status st;

    /* The header this was built with must match the library that loaded. */
    if (strcmp(chargan_version(), CHARGAN_VERSION_STRING) != 0 ||
        chargan_version_number() != CHARGAN_VERSION_NUMBER) {
        fprintf(stderr, "header %s, library %s\n", CHARGAN_VERSION_STRING, chargan_version());
        return 1;
    }
    st = chargan_tokenizer_new(NULL, &tok);
    if (st == CHARGAN_OK)
        st = chargan_tokenizer_fit(tok, text, sizeof text - 1);
    if (st == CHARGAN_OK)
        st = chargan_tokenizer_encode(tok, text, sizeof text - 1, ids, sizeof text, &n_ids);
    if (st == CHARGAN_OK)
        st = chargan_tokenizer_decode(tok, ids, n_ids, back, sizeof back, &len);
    if (st != CHARGAN_OK) {
        fprintf(stderr, "%s: %s\n", chargan_strerror(st),
                tok ? chargan_tokenizer_last_error(tok) : chargan_last_error());
        chargan_tokenizer_free(tok);
        return 1;
    }
    chargan_tokenizer_free(tok);
    if (len != sizeof text - 1 || memcmp(back, text, len) != 0) {
        fprintf(stderr, "round trip changed the text\n");
        return 1;
    }
    printf("libchargan %s: %zu ids round-tripped\n", chargan_version(), n_ids);
    return 0;
}
