/* Lowercase hex, the text form of every key and seed hyperseaport prints or reads. */
#ifndef HSP_ENCODING_HEX_H
#define HSP_ENCODING_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*len hex digits and a NUL: out must hold 2*len + 1 bytes. */
void hsp_hex_encode(char *out, const uint8_t *in, size_t len);

/* Parses exactly 2*len hex digits (either case) followed by the end of the string.
 * Returns 0, or -1 if the text has another length or a non-hex character. */
int hsp_hex_decode(uint8_t *out, size_t len, const char *text);

#endif
