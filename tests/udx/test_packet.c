/* Header/SACK codec against the udx-native 1.21.3 captures in docs/protocol/udx.md §7. */
#include "check.h"
#include "packet.h"
#include "udx.h"

static int hex_eq(const uint8_t *buf, size_t len, const char *hex) {
  static const char d[] = "0123456789abcdef";
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    while (hex[j] == ' ') j++;
    if (!hex[j] || !hex[j + 1]) return 0;
    if (hex[j] != d[buf[i] >> 4] || hex[j + 1] != d[buf[i] & 15]) return 0;
    j += 2;
  }
  while (hex[j] == ' ') j++;
  return hex[j] == 0;
}

int main(void) {
  uint8_t out[64];
  /* §7.1 #0: DATA|END to id 2, rwnd 4 MiB, seq 0, ack 0 */
  hsp_udx_header_t h = {.type = 3, .id = 2, .rwnd = HSP_UDX_DEFAULT_RWND, .seq = 0, .ack = 0};
  hsp_udx_header_encode(out, &h);
  CHECK(hex_eq(out, 20, "ff 01 03 00 02 00 00 00 00 00 40 00 00 00 00 00 00 00 00 00"));
  /* §7.1 #4: ACK to id 2, seq 1, ack 1 */
  h = (hsp_udx_header_t){.type = 0, .id = 2, .rwnd = HSP_UDX_DEFAULT_RWND, .seq = 1, .ack = 1};
  hsp_udx_header_encode(out, &h);
  CHECK(hex_eq(out, 20, "ff 01 00 00 02 00 00 00 00 00 40 00 01 00 00 00 01 00 00 00"));

  /* §7.2 #5: SACK [1,3) from B to id 1 */
  static const uint8_t sack[] = {0xff, 1, 4, 0, 1, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0,
                                 0,    0, 0, 0, 1, 0, 0, 0, 3, 0, 0,    0};
  hsp_udx_header_t d;
  CHECK_EQ_INT(hsp_udx_header_decode(sack, sizeof(sack), &d), 0);
  CHECK_EQ_INT(d.type, HSP_UDX_TYPE_SACK);
  CHECK_EQ_INT(d.id, 1);
  CHECK_EQ_INT(d.rwnd, 4194304);
  CHECK_EQ_INT(d.ack, 0);
  hsp_udx_sack_block_t b[HSP_UDX_MAX_SACKS];
  CHECK_EQ_INT(hsp_udx_sack_decode(sack + 20, sizeof(sack) - 20, b, HSP_UDX_MAX_SACKS), 1);
  CHECK_EQ_INT(b[0].start, 1);
  CHECK_EQ_INT(b[0].end, 3);
  CHECK_EQ_INT(hsp_udx_sack_encode(out, b, 1), 8);
  CHECK(hex_eq(out, 8, "01000000 03000000"));
  /* partial trailing block ignored; more than 50 blocks capped */
  CHECK_EQ_INT(hsp_udx_sack_decode(sack + 20, 7, b, HSP_UDX_MAX_SACKS), 0);
  uint8_t many[8 * 60] = {0};
  CHECK_EQ_INT(hsp_udx_sack_decode(many, sizeof(many), b, HSP_UDX_MAX_SACKS), 50);

  /* §7.2 #8 heartbeat and #10 destroy decode */
  static const uint8_t hb[] = {0xff, 1, 0x20, 0, 2, 0, 0, 0, 0, 0, 0x40, 0, 3, 0, 0, 0, 0, 0, 0, 0};
  CHECK_EQ_INT(hsp_udx_header_decode(hb, sizeof(hb), &d), 0);
  CHECK_EQ_INT(d.type, HSP_UDX_TYPE_HEARTBEAT);
  CHECK_EQ_INT(d.seq, 3);

  /* Not UDX: short, bad magic, bad version, NULL */
  CHECK_EQ_INT(hsp_udx_header_decode(hb, 19, &d), HSP_UDX_EMALFORMED);
  uint8_t bad[20];
  for (int i = 0; i < 20; i++) bad[i] = hb[i];
  bad[0] = 0xfe;
  CHECK_EQ_INT(hsp_udx_header_decode(bad, 20, &d), HSP_UDX_EMALFORMED);
  bad[0] = 0xff;
  bad[1] = 2;
  CHECK_EQ_INT(hsp_udx_header_decode(bad, 20, &d), HSP_UDX_EMALFORMED);
  CHECK_EQ_INT(hsp_udx_header_decode(NULL, 20, &d), HSP_UDX_EMALFORMED);

  /* seq wrap comparison */
  CHECK(hsp_udx_seq_diff(2, 0xfffffffeu) == 4);
  CHECK(hsp_udx_seq_diff(0xfffffffeu, 2) == -4);
  CHECK_EQ_STR(hsp_udx_strerror(HSP_UDX_ECONNRESET), "stream reset by peer");
  return check_summary("test_udx_packet");
}
