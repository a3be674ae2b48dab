/* fake_library.c - a stand-in for libchargan with only a version function,
 * for the Python loader's failure paths: built with FAKE_VERSION_NUMBER of
 * another major version (refused at import), or of the right one (refused
 * because the other functions are missing). */
unsigned chargan_version_number(void);

unsigned chargan_version_number(void)
{
    return FAKE_VERSION_NUMBER;
}
