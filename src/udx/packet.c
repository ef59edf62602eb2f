#include "packet.h"

#include "udx.h"

void hsp_udx_header_encode(uint8_t out[HSP_UDX_HEADER_SIZE], const hsp_udx_header_t *h) {
  out[0] = HSP_UDX_MAGIC;
  out[1] = HSP_UDX_VERSION;
  out[2] = h->type;
  out[3] = h->data_offset;
  hsp_udx_write_u32(out + 4, h->id);
  hsp_udx_write_u32(out + 8, h->rwnd);
  hsp_udx_write_u32(out + 12, h->seq);
  hsp_udx_write_u32(out + 16, h->ack);
}

int hsp_udx_header_decode(const uint8_t *buf, size_t len, hsp_udx_header_t *h) {
  if (buf == NULL || len < HSP_UDX_HEADER_SIZE || buf[0] != HSP_UDX_MAGIC ||
      buf[1] != HSP_UDX_VERSION) {
    return HSP_UDX_EMALFORMED;
  }
  h->type = buf[2];
  h->data_offset = buf[3];
  h->id = hsp_udx_read_u32(buf + 4);
  h->rwnd = hsp_udx_read_u32(buf + 8);
  h->seq = hsp_udx_read_u32(buf + 12);
  h->ack = hsp_udx_read_u32(buf + 16);
  return 0;
}

size_t hsp_udx_sack_encode(uint8_t *out, const hsp_udx_sack_block_t *blocks, size_t n) {
  for (size_t i = 0; i < n; i++) {
    hsp_udx_write_u32(out + 8 * i, blocks[i].start);
    hsp_udx_write_u32(out + 8 * i + 4, blocks[i].end);
  }
  return 8 * n;
}

size_t hsp_udx_sack_decode(const uint8_t *payload, size_t len, hsp_udx_sack_block_t *blocks,
                           size_t max) {
  size_t n = len / 8;
  if (n > max) n = max;
  if (n > HSP_UDX_MAX_SACKS) n = HSP_UDX_MAX_SACKS;
  for (size_t i = 0; i < n; i++) {
    blocks[i].start = hsp_udx_read_u32(payload + 8 * i);
    blocks[i].end = hsp_udx_read_u32(payload + 8 * i + 4);
  }
  return n;
}
