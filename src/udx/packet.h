/*
 * UDX wire format (version 1), see docs/protocol/udx.md §1.
 *
 *  off size field
 *   0   1   magic 0xff
 *   1   1   version 0x01
 *   2   1   type flags: DATA 0x01, END 0x02, SACK 0x04, MESSAGE 0x08, DESTROY 0x10, HEARTBEAT 0x20
 *   3   1   data_offset: bytes to skip between header and payload (MTU probe padding)
 *   4   4   id   (the receiver's stream id)            all u32 little-endian
 *   8   4   rwnd (sender's receive window in bytes)
 *  12   4   seq  (own seq for DATA/END, else snd.nxt)
 *  16   4   ack  (rcv.nxt)
 *  20   ..  data_offset bytes, then payload; SACK payload = N x {start u32, end u32}, [start,end)
 */
#ifndef HSP_UDX_PACKET_H
#define HSP_UDX_PACKET_H

#include <stddef.h>
#include <stdint.h>

#define HSP_UDX_HEADER_SIZE 20
#define HSP_UDX_MAGIC 0xff
#define HSP_UDX_VERSION 1
#define HSP_UDX_MAX_SACKS 50

enum {
  HSP_UDX_TYPE_DATA = 0x01,
  HSP_UDX_TYPE_END = 0x02,
  HSP_UDX_TYPE_SACK = 0x04,
  HSP_UDX_TYPE_MESSAGE = 0x08,
  HSP_UDX_TYPE_DESTROY = 0x10,
  HSP_UDX_TYPE_HEARTBEAT = 0x20,
};

typedef struct hsp_udx_header {
  uint8_t type;
  uint8_t data_offset;
  uint32_t id;
  uint32_t rwnd;
  uint32_t seq;
  uint32_t ack;
} hsp_udx_header_t;

typedef struct hsp_udx_sack_block {
  uint32_t start; /* inclusive */
  uint32_t end;   /* exclusive */
} hsp_udx_sack_block_t;

static inline uint32_t hsp_udx_read_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void hsp_udx_write_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Wrap-around sequence comparison (RFC 1982 style). */
static inline int32_t hsp_udx_seq_diff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

void hsp_udx_header_encode(uint8_t out[HSP_UDX_HEADER_SIZE], const hsp_udx_header_t *h);

/* Returns 0 if buf is a UDX packet (len >= 20, magic, version), else HSP_UDX_EMALFORMED.
 * Anything that fails this check belongs to the socket's raw-datagram callback. */
int hsp_udx_header_decode(const uint8_t *buf, size_t len, hsp_udx_header_t *h);

/* Writes up to max blocks (8 bytes each) to out; returns bytes written. */
size_t hsp_udx_sack_encode(uint8_t *out, const hsp_udx_sack_block_t *blocks, size_t n);

/* Parses the SACK blocks of a packet payload (whole blocks only, at most HSP_UDX_MAX_SACKS
 * are used, trailing partial bytes ignored). Returns the number of blocks. */
size_t hsp_udx_sack_decode(const uint8_t *payload, size_t len, hsp_udx_sack_block_t *blocks,
                           size_t max);

#endif
