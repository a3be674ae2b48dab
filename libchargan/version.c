/* version.c - the runtime version, to compare with the header's macros. */
#include "internal.h"

const char *chargan_version(void)
{
    return CHARGAN_VERSION_STRING;
}

unsigned chargan_version_number(void)
{
    return CHARGAN_VERSION_NUMBER;
}
