/* Blind relay frames against bytes produced by npm protomux 3.12 + blind-relay 1.6
 * (open frame, pair message) and the parser's handling of answers, batches and closes. */
#include <string.h>

#include "check.h"
#include "hex.h"
#include "relay.h"

static size_t unhex(uint8_t *out, size_t cap, const char *h) {
  size_t n = strlen(h) / 2;
  if (n > cap || hsp_hex_decode(out, n, h) != 0) return 0;
  return n;
}

int main(void) {
  uint8_t id[32], token[32], other[32], buf[128], want[128];
  memset(id, 0x11, 32);
  memset(token, 0xab, 32);
  memset(other, 0xcd, 32);

  long n = hsp_dht_relay_encode_open(buf, sizeof(buf), id);
  size_t w = unhex(want, sizeof(want),
                   "0001010b626c696e642d72656c617920111111111111111111111111111111111111111111"
                   "1111111111111111111111");
  CHECK(n == (long)w && !memcmp(buf, want, w));
  n = hsp_dht_relay_encode_pair(buf, sizeof(buf), true, token, 300);
  w = unhex(want, sizeof(want),
            "010001abababababababababababababababababababababababababababababababab"
            "fd2c0100");
  CHECK(n == (long)w && !memcmp(buf, want, w));
  CHECK(hsp_dht_relay_encode_pair(buf, 10, true, token, 300) < 0);

  /* The relay's answer on its channel 1: pair{isInitiator false, token, id 7}. */
  uint32_t rid = 0;
  w = unhex(want, sizeof(want),
            "010000abababababababababababababababababababababababababababababababab0700");
  CHECK_EQ_INT(hsp_dht_relay_parse(want, w, token, &rid), 1);
  CHECK_EQ_INT((int)rid, 7);
  CHECK_EQ_INT(hsp_dht_relay_parse(want, w, other, &rid), 0); /* someone else's pairing */
  CHECK(hsp_dht_relay_parse(want, w - 3, token, &rid) < 0);  /* truncated */
  /* Its open, an unpair (type 1), then a close. */
  w = unhex(want, sizeof(want), "0001050b626c696e642d72656c617900");
  CHECK_EQ_INT(hsp_dht_relay_parse(want, w, token, &rid), 0);
  w = unhex(want, sizeof(want), "010100abababababababababababababababababababababababababababababababab");
  CHECK_EQ_INT(hsp_dht_relay_parse(want, w, token, &rid), 0);
  w = unhex(want, sizeof(want), "000305");
  CHECK(hsp_dht_relay_parse(want, w, token, &rid) < 0);
  /* A batch: channel 2, an unrelated message, a switch to channel 1, then the answer. */
  w = unhex(want, sizeof(want),
            "000002" "020500" "0001" "26" "0000"
            "ababababababababababababababababababababababababababababababababfd2c0100");
  rid = 0;
  CHECK_EQ_INT(hsp_dht_relay_parse(want, w, token, &rid), 1);
  CHECK_EQ_INT((int)rid, 300);
  CHECK(hsp_dht_relay_parse(want, 0, token, &rid) < 0);
  return check_summary("dht_relay");
}
