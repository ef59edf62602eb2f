/* dht-rpc codec against the loopback captures of docs/protocol/dht-rpc.md §9. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hex.h"
#include "messages.h"

static const char *A_ID = "451c196b4592cb856eb1176343b4485ee5eecd79b11760d32715cb65b1b04bd4";
static const char *B_ID = "7b150001028a4f05607ee8631330f68e459a5939e5d14613ed5a7f3228971a16";
static const char *TOKEN = "c30406dde5c92e50d814d88a32e4dec068bc4ebe08669d47a9c19df31eaad6f2";

/* Every datagram of tools/dht-rpc-capture.txt used in §9. */
static const char *CAPTURES[] = {
  "03045a3b7f000001317500",
  "13015a3b7f0000018fa0451c196b4592cb856eb1176343b4485ee5eecd79b11760d32715cb65b1b04bd4",
  "030599567f00000131757b150001028a4f05607ee8631330f68e459a5939e5d14613ed5a7f3228971a1600",
  "130199567f0000013275451c196b4592cb856eb1176343b4485ee5eecd79b11760d32715cb65b1b04bd4",
  "030c5b3b7f000001317502aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "13055b3b7f0000018fa0451c196b4592cb856eb1176343b4485ee5eecd79b11760d32715cb65b1b04bd4017f0000013275",
  "03185c3b7f00000132752aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa026869",
  "13175c3b7f0000018fa07b150001028a4f05607ee8631330f68e459a5939e5d14613ed5a7f3228971a16c30406dde5c92e50d814d88a32e4dec068bc4ebe08669d47a9c19df31eaad6f2017f000001317504706f6e67",
  "031a5d3b7f0000013275c30406dde5c92e50d814d88a32e4dec068bc4ebe08669d47a9c19df31eaad6f22aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa026869",
  "03125e3b7f000001327500000000000000000000000000000000000000000000000000000000000000002a026869",
  "130b5e3b7f0000018fa07b150001028a4f05607ee8631330f68e459a5939e5d14613ed5a7f3228971a16c30406dde5c92e50d814d88a32e4dec068bc4ebe08669d47a9c19df31eaad6f202",
  "03085f3b7f00000131752baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "130d5f3b7f0000018fa0451c196b4592cb856eb1176343b4485ee5eecd79b11760d32715cb65b1b04bd4017f000001327501",
  "0300603b7f00000132752c",
  "0314623b7f000001327501023375",
  "0314633b7f000001317503067f0000013275",
  "0314613b7f00000131750404f4010000",
};

static size_t unhex(uint8_t *out, size_t cap, const char *text) {
  char clean[4096];
  size_t n = 0;
  for (const char *p = text; *p && n + 1 < sizeof(clean); p++)
    if (*p != ' ') clean[n++] = *p;
  clean[n] = 0;
  if (n % 2 || n / 2 > cap || hsp_hex_decode(out, n / 2, clean) != 0) return 0;
  return n / 2;
}

static bool eq_hex(const uint8_t *bytes, const char *hex) {
  uint8_t b[32];
  return bytes && unhex(b, sizeof(b), hex) == 32 && memcmp(b, bytes, 32) == 0;
}

static hsp_ipv4_addr_t lo(uint16_t port) { return (hsp_ipv4_addr_t){{127, 0, 0, 1}, port}; }

/* Decode then re-encode every capture: the bytes must come back identical. */
static void test_roundtrip_captures(void) {
  for (size_t i = 0; i < sizeof(CAPTURES) / sizeof(CAPTURES[0]); i++) {
    uint8_t in[512], out[512];
    size_t n = unhex(in, sizeof(in), CAPTURES[i]);
    CHECK(n > 0);
    long m = -1;
    if (in[0] == HSP_DHT_TYPE_REQUEST) {
      hsp_dht_request_t req;
      CHECK_EQ_INT(hsp_dht_request_decode(&req, in, n), 0);
      m = hsp_dht_request_encode(out, sizeof(out), &req);
    } else {
      hsp_dht_response_t res;
      CHECK_EQ_INT(hsp_dht_response_decode(&res, in, n), 0);
      m = hsp_dht_response_encode(out, sizeof(out), &res);
    }
    CHECK_EQ_INT(m, (long)n);
    CHECK(m == (long)n && memcmp(in, out, n) == 0);
    if (m != (long)n || memcmp(in, out, n) != 0) fprintf(stderr, "capture %zu differs\n", i);
  }
}

/* Encode the §9 messages from fields and compare with the capture. */
static void test_encode_fields(void) {
  uint8_t out[256], want[256], aa[32], id_b[32], token[32];
  memset(aa, 0xaa, 32);
  unhex(id_b, 32, B_ID);
  unhex(token, 32, TOKEN);

  /* 9.1 PING */
  hsp_dht_request_t ping = {.tid = 0x3b5a, .to = lo(30001), .internal = true, .command = 0};
  long n = hsp_dht_request_encode(out, sizeof(out), &ping);
  CHECK(n == 11 && unhex(want, sizeof(want), CAPTURES[0]) == 11 && memcmp(out, want, 11) == 0);

  /* 9.2 PING with id */
  hsp_dht_request_t ping_b = {.tid = 0x5699, .to = lo(30001), .internal = true, .id = id_b};
  n = hsp_dht_request_encode(out, sizeof(out), &ping_b);
  CHECK(n == 43 && unhex(want, sizeof(want), CAPTURES[2]) == 43 && memcmp(out, want, 43) == 0);

  /* 9.4 token echo, app command 42 with target and value */
  hsp_dht_request_t app = {.tid = 0x3b5d, .to = lo(30002), .token = token, .command = 42,
                           .target = aa, .has_value = true,
                           .value = {(const uint8_t *)"hi", 2}};
  n = hsp_dht_request_encode(out, sizeof(out), &app);
  CHECK(n == 78 && unhex(want, sizeof(want), CAPTURES[8]) == 78 && memcmp(out, want, 78) == 0);

  /* 9.4 reply with id, token, closer [A], value "pong" */
  uint8_t closer[6];
  hsp_ipv4_addr_t a = lo(30001);
  hsp_dht_addr_to_wire(closer, &a);
  hsp_dht_response_t pong = {.tid = 0x3b5c, .to = lo(41103), .id = id_b, .token = token,
                             .closer = closer, .closer_count = 1, .has_value = true,
                             .value = {(const uint8_t *)"pong", 4}};
  n = hsp_dht_response_encode(out, sizeof(out), &pong);
  CHECK(n == 86 && unhex(want, sizeof(want), CAPTURES[7]) == 86 && memcmp(out, want, 86) == 0);

  /* 9.4 INVALID_TOKEN reply */
  hsp_dht_response_t inv = {.tid = 0x3b5e, .to = lo(41103), .id = id_b, .token = token,
                            .error = HSP_DHT_WIRE_INVALID_TOKEN};
  n = hsp_dht_response_encode(out, sizeof(out), &inv);
  CHECK(n == 75 && unhex(want, sizeof(want), CAPTURES[10]) == 75 && memcmp(out, want, 75) == 0);

  /* Buffer one byte short. */
  CHECK_EQ_INT(hsp_dht_response_encode(out, 74, &inv), HSP_DHT_ENOBUFS);
  /* An empty value is present: flag set, length byte 0. */
  hsp_dht_request_t empty = {.tid = 1, .to = lo(1), .internal = true, .has_value = true};
  n = hsp_dht_request_encode(out, sizeof(out), &empty);
  CHECK(n == 12 && out[1] == 0x14 && out[11] == 0);
}

static void test_decode_fields(void) {
  uint8_t in[256];
  size_t n = unhex(in, sizeof(in), CAPTURES[12]);
  hsp_dht_response_t res;
  CHECK_EQ_INT(hsp_dht_response_decode(&res, in, n), 0);
  CHECK_EQ_INT(res.tid, 0x3b5f);
  CHECK_EQ_INT(res.to.port, 41103);
  CHECK(eq_hex(res.id, A_ID));
  CHECK(res.token == NULL);
  CHECK_EQ_INT(res.closer_count, 1);
  hsp_ipv4_addr_t b = hsp_dht_addr_from_wire(res.closer);
  hsp_ipv4_addr_t want = lo(30002);
  CHECK(hsp_dht_addr_equal(&b, &want));
  CHECK_EQ_INT(res.error, HSP_DHT_WIRE_UNKNOWN_COMMAND);
  CHECK(!res.has_value);

  n = unhex(in, sizeof(in), CAPTURES[8]);
  hsp_dht_request_t req;
  CHECK_EQ_INT(hsp_dht_request_decode(&req, in, n), 0);
  CHECK(!req.internal && req.command == 42 && req.id == NULL);
  CHECK(eq_hex(req.token, TOKEN));
  CHECK(req.target && req.target[0] == 0xaa && req.target[31] == 0xaa);
  CHECK(req.has_value && req.value.len == 2 && memcmp(req.value.data, "hi", 2) == 0);

  /* 9.6 PING_NAT: value is uint16 LE 30003 */
  n = unhex(in, sizeof(in), CAPTURES[14]);
  CHECK_EQ_INT(hsp_dht_request_decode(&req, in, n), 0);
  CHECK(req.internal && req.command == HSP_DHT_CMD_PING_NAT && req.value.len == 2);
  CHECK_EQ_INT(req.value.data[0] | req.value.data[1] << 8, 30003);
}

static void test_malformed(void) {
  uint8_t in[256];
  size_t n = unhex(in, sizeof(in), CAPTURES[7]);
  hsp_dht_response_t res;
  hsp_dht_request_t req;
  /* Every truncation fails cleanly; the full message plus garbage decodes. */
  for (size_t i = 0; i < n; i++) CHECK(hsp_dht_response_decode(&res, in, i) < 0);
  in[n] = 0x77;
  CHECK_EQ_INT(hsp_dht_response_decode(&res, in, n + 1), 0);
  CHECK(hsp_dht_request_decode(&req, in, n) == HSP_DHT_ETYPE);
  in[0] = 0x23;
  CHECK_EQ_INT(hsp_dht_message_type(in, n), 0);
  CHECK(hsp_dht_response_decode(&res, in, n) == HSP_DHT_ETYPE);
  CHECK_EQ_INT(hsp_dht_message_type(in, 1), 0);
  /* Flags decoded as a varint: 0xfd 0x04 0x00 = internal, in 3 bytes. */
  const uint8_t wide[] = {0x03, 0xfd, 0x04, 0x00, 0x01, 0x00, 127, 0, 0, 1, 0x31, 0x75, 0x00};
  CHECK_EQ_INT(hsp_dht_request_decode(&req, wide, sizeof(wide)), 0);
  CHECK(req.internal && req.tid == 1 && req.command == 0);
  /* A closer-node count larger than the rest of the datagram. */
  const uint8_t big[] = {0x13, 0x04, 0, 0, 127, 0, 0, 1, 0, 0, 0x05, 1, 2, 3, 4, 5, 6};
  CHECK(hsp_dht_response_decode(&res, big, sizeof(big)) < 0);
  /* Unknown flag bits are ignored. */
  const uint8_t extra[] = {0x03, 0x24, 0, 0, 127, 0, 0, 1, 0, 0, 0x07};
  CHECK_EQ_INT(hsp_dht_request_decode(&req, extra, sizeof(extra)), 0);
  CHECK(req.internal && req.command == 7);
}

int main(void) {
  test_roundtrip_captures();
  test_encode_fields();
  test_decode_fields();
  test_malformed();
  return check_summary("dht_messages");
}
