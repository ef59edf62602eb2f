#include "check.h"
#include "compact.h"
#include "hex.h"

#include <stdlib.h>

/* Encodes with one codec call into a fresh buffer (preencode first, as callers do) and
 * compares against the hex the JS reference produced (docs/protocol/crypto-streams.md §1.1). */
#define EXPECT_ENCODING(expected_hex, preencode_call, encode_call)                             \
  do {                                                                                         \
    hsp_cenc_t s = hsp_cenc_for_size();                                                        \
    preencode_call;                                                                            \
    uint8_t *buf = malloc(s.end ? s.end : 1);                                                  \
    size_t n = s.end;                                                                          \
    s = hsp_cenc_for_encode(buf, n);                                                           \
    encode_call;                                                                               \
    char hex[512];                                                                             \
    hsp_hex_encode(hex, buf, n);                                                               \
    CHECK(hsp_cenc_ok(&s));                                                                    \
    CHECK_EQ_INT(s.start, n);                                                                  \
    CHECK_EQ_STR(hex, expected_hex);                                                           \
    free(buf);                                                                                 \
  } while (0)

static hsp_cenc_t decoder(uint8_t *buf, size_t cap, const char *hex) {
  size_t n = strlen(hex) / 2;
  if (n > cap || hsp_hex_decode(buf, n, hex) != 0) abort();
  return hsp_cenc_for_decode(buf, n);
}

static void test_reference_vectors(void) {
  EXPECT_ENCODING("00", hsp_cenc_preencode_uint(&s, 0), hsp_cenc_encode_uint(&s, 0));
  EXPECT_ENCODING("fc", hsp_cenc_preencode_uint(&s, 252), hsp_cenc_encode_uint(&s, 252));
  EXPECT_ENCODING("fdfd00", hsp_cenc_preencode_uint(&s, 253), hsp_cenc_encode_uint(&s, 253));
  EXPECT_ENCODING("fdffff", hsp_cenc_preencode_uint(&s, 65535), hsp_cenc_encode_uint(&s, 65535));
  EXPECT_ENCODING("fe00000100", hsp_cenc_preencode_uint(&s, 65536),
                  hsp_cenc_encode_uint(&s, 65536));
  EXPECT_ENCODING("feffffffff", hsp_cenc_preencode_uint(&s, 4294967295u),
                  hsp_cenc_encode_uint(&s, 4294967295u));
  EXPECT_ENCODING("ff0000000001000000", hsp_cenc_preencode_uint(&s, 4294967296ull),
                  hsp_cenc_encode_uint(&s, 4294967296ull));
  EXPECT_ENCODING("ffffffffffffff1f00", hsp_cenc_preencode_uint(&s, HSP_CENC_MAX_SAFE_INTEGER),
                  hsp_cenc_encode_uint(&s, HSP_CENC_MAX_SAFE_INTEGER));
  EXPECT_ENCODING("ab", hsp_cenc_preencode_uint8(&s, 171), hsp_cenc_encode_uint8(&s, 171));
  EXPECT_ENCODING("3412", hsp_cenc_preencode_uint16(&s, 4660), hsp_cenc_encode_uint16(&s, 4660));
  EXPECT_ENCODING("563412", hsp_cenc_preencode_uint24(&s, 1193046),
                  hsp_cenc_encode_uint24(&s, 1193046));
  EXPECT_ENCODING("78563412", hsp_cenc_preencode_uint32(&s, 305419896),
                  hsp_cenc_encode_uint32(&s, 305419896));
  EXPECT_ENCODING("9a78563412000000", hsp_cenc_preencode_uint64(&s, 78187493530ull),
                  hsp_cenc_encode_uint64(&s, 78187493530ull));
  EXPECT_ENCODING("01", hsp_cenc_preencode_int(&s, -1), hsp_cenc_encode_int(&s, -1));
  EXPECT_ENCODING("02", hsp_cenc_preencode_int(&s, 1), hsp_cenc_encode_int(&s, 1));
  EXPECT_ENCODING("fd8f01", hsp_cenc_preencode_int(&s, -200), hsp_cenc_encode_int(&s, -200));
  EXPECT_ENCODING("01", hsp_cenc_preencode_bool(&s, true), hsp_cenc_encode_bool(&s, true));
  EXPECT_ENCODING("00", hsp_cenc_preencode_bool(&s, false), hsp_cenc_encode_bool(&s, false));
  EXPECT_ENCODING("0568656c6c6f", hsp_cenc_preencode_buffer(&s, (const uint8_t *)"hello", 5),
                  hsp_cenc_encode_buffer(&s, (const uint8_t *)"hello", 5));
  EXPECT_ENCODING("00", hsp_cenc_preencode_buffer(&s, NULL, 0),
                  hsp_cenc_encode_buffer(&s, NULL, 0));
  EXPECT_ENCODING("0102", hsp_cenc_preencode_raw(&s, 2),
                  hsp_cenc_encode_raw(&s, (const uint8_t *)"\x01\x02", 2));
  EXPECT_ENCODING("026869", hsp_cenc_preencode_string(&s, "hi", 2),
                  hsp_cenc_encode_string(&s, "hi", 2));
  EXPECT_ENCODING("0368c3a9", hsp_cenc_preencode_string(&s, "h\xc3\xa9", 3),
                  hsp_cenc_encode_string(&s, "h\xc3\xa9", 3));

  const uint64_t arr[] = {1, 253, 70000};
  EXPECT_ENCODING("0301fdfd00fe70110100",
                  {
                    hsp_cenc_preencode_array_length(&s, 3);
                    for (int i = 0; i < 3; i++) hsp_cenc_preencode_uint(&s, arr[i]);
                  },
                  {
                    hsp_cenc_encode_array_length(&s, 3);
                    for (int i = 0; i < 3; i++) hsp_cenc_encode_uint(&s, arr[i]);
                  });

  hsp_ipv4_addr_t a4 = {{192, 168, 1, 2}, 49737};
  EXPECT_ENCODING("c0a8010249c2", hsp_cenc_preencode_ipv4_addr(&s),
                  hsp_cenc_encode_ipv4_addr(&s, &a4));
  hsp_ipv6_addr_t a6 = {{0}, 443};
  CHECK(hsp_ipv6_parse("2001:db8::1", a6.host) == 0);
  EXPECT_ENCODING("20010db8000000000000000000000001bb01", hsp_cenc_preencode_ipv6_addr(&s),
                  hsp_cenc_encode_ipv6_addr(&s, &a6));
}

static void test_decode_rules(void) {
  uint8_t buf[64];
  hsp_cenc_t s = decoder(buf, sizeof buf, "fd0500"); /* non-minimal accepted, as in JS */
  CHECK_EQ_INT(hsp_cenc_decode_uint(&s), 5);
  CHECK(hsp_cenc_ok(&s));

  s = decoder(buf, sizeof buf, "02");
  CHECK(hsp_cenc_decode_bool(&s) == false);

  s = decoder(buf, sizeof buf, "ffffffffffffffff");
  hsp_cenc_decode_uint64(&s);
  CHECK_EQ_INT(s.error, HSP_CENC_ERANGE);

  s = decoder(buf, sizeof buf, "ff0000000000002000"); /* 2^53 as a varint */
  hsp_cenc_decode_uint(&s);
  CHECK_EQ_INT(s.error, HSP_CENC_ERANGE);

  s = decoder(buf, sizeof buf, "fe01001000");
  hsp_cenc_decode_array_length(&s, 0);
  CHECK_EQ_INT(s.error, HSP_CENC_ERANGE);

  /* A count that cannot fit in what is left is rejected before any element is read. */
  s = decoder(buf, sizeof buf, "0a0102");
  hsp_cenc_decode_array_length(&s, 1);
  CHECK_EQ_INT(s.error, HSP_CENC_ETRUNCATED);

  s = decoder(buf, sizeof buf, "20010db8000000000000000000000001bb01");
  hsp_ipv6_addr_t a6 = hsp_cenc_decode_ipv6_addr(&s);
  char text[HSP_CENC_IP_STRLEN];
  hsp_ipv6_format(a6.host, text);
  CHECK_EQ_STR(text, "2001:db8:0:0:0:0:0:1");
  CHECK_EQ_INT(a6.port, 443);

  s = decoder(buf, sizeof buf, "c0a8010249c2");
  hsp_ipv4_addr_t a4 = hsp_cenc_decode_ipv4_addr(&s);
  hsp_ipv4_format(a4.host, text);
  CHECK_EQ_STR(text, "192.168.1.2");
  CHECK_EQ_INT(a4.port, 49737);
  CHECK_EQ_INT(hsp_cenc_remaining(&s), 0);
}

/* Every strict prefix of a valid encoding must fail with ETRUNCATED, and the sticky error
 * must make later reads return zero without touching memory past the end. */
static void test_truncation(void) {
  uint8_t buf[64];
  const char *cases[] = {"fdffff", "fe00000100", "ff0000000001000000", "0568656c6c6f",
                         "c0a8010249c2", "9a78563412000000"};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    size_t full = strlen(cases[c]) / 2;
    decoder(buf, sizeof buf, cases[c]);
    for (size_t n = 0; n < full; n++) {
      hsp_cenc_t s = hsp_cenc_for_decode(buf, n);
      switch (c) {
      case 3: hsp_cenc_decode_buffer(&s); break;
      case 4: hsp_cenc_decode_ipv4_addr(&s); break;
      case 5: hsp_cenc_decode_uint64(&s); break;
      default: hsp_cenc_decode_uint(&s);
      }
      CHECK_EQ_INT(s.error, HSP_CENC_ETRUNCATED);
      CHECK_EQ_INT(hsp_cenc_decode_uint32(&s), 0);
      CHECK_EQ_INT(s.error, HSP_CENC_ETRUNCATED);
    }
  }
}

static void test_encode_errors(void) {
  uint8_t buf[4];
  hsp_cenc_t s = hsp_cenc_for_encode(buf, sizeof buf);
  hsp_cenc_encode_uint(&s, HSP_CENC_MAX_SAFE_INTEGER + 1);
  CHECK_EQ_INT(s.error, HSP_CENC_ERANGE);

  s = hsp_cenc_for_encode(buf, sizeof buf);
  hsp_cenc_encode_buffer(&s, (const uint8_t *)"hello", 5); /* 6 bytes into 4 */
  CHECK_EQ_INT(s.error, HSP_CENC_ETRUNCATED);

  s = hsp_cenc_for_size();
  hsp_cenc_encode_uint8(&s, 1); /* writing into a size-only state */
  CHECK_EQ_INT(s.error, HSP_CENC_EINVAL);

  uint8_t host[16];
  CHECK(hsp_ipv4_parse("1.2.3", host) != 0);
  CHECK(hsp_ipv4_parse("256.1.1.1", host) != 0);
  CHECK(hsp_ipv6_parse("1::2::3", host) != 0);
}

static void test_int_zigzag_extremes(void) {
  const int64_t values[] = {0, -1, 1, -2, 4503599627370495LL, -4503599627370496LL};
  for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
    uint8_t buf[16];
    hsp_cenc_t s = hsp_cenc_for_encode(buf, sizeof buf);
    hsp_cenc_encode_int(&s, values[i]);
    CHECK(hsp_cenc_ok(&s));
    hsp_cenc_t d = hsp_cenc_for_decode(buf, s.start);
    CHECK_EQ_INT(hsp_cenc_decode_int(&d), values[i]);
    CHECK(hsp_cenc_ok(&d));
  }
}

static void test_hex(void) {
  uint8_t out[2];
  CHECK(hsp_hex_decode(out, 2, "aBcd") == 0);
  CHECK_EQ_INT(out[0], 0xab);
  CHECK_EQ_INT(out[1], 0xcd);
  CHECK(hsp_hex_decode(out, 2, "abc") != 0);
  CHECK(hsp_hex_decode(out, 2, "abcde") != 0);
  CHECK(hsp_hex_decode(out, 2, "abcg") != 0);
}

int main(void) {
  test_reference_vectors();
  test_decode_rules();
  test_truncation();
  test_encode_errors();
  test_int_zigzag_extremes();
  test_hex();
  return check_summary("compact");
}
