/*
 * Registry messages on a HyperDHT connection: each message is preceded by its length as a
 * uint32 little-endian (compact-encoding `uint32`). The connection's own message boundaries
 * carry no meaning: hsp_dht_conn_write splits writes into 64 KiB secret-stream messages and
 * a secret-stream message cannot exceed 16 MiB, while a snapshot may reach
 * HSP_REG_SNAPSHOT_MAX. Sans-I/O: bytes in, whole messages out.
 */
#ifndef HSP_REGISTRY_FRAME_H
#define HSP_REGISTRY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define HSP_REG_FRAME_HEADER 4
/* Largest request a registry accepts from a client: requests are a few KiB at most, so a
 * client cannot make the registry buffer megabytes per connection. */
#define HSP_REG_FRAME_REQUEST_MAX (64u << 10)

typedef struct hsp_reg_framer {
  uint8_t *buf; /* a partial frame (header included) carried over from earlier input */
  size_t len, cap;
  size_t max; /* largest message accepted */
} hsp_reg_framer_t;

void hsp_reg_framer_init(hsp_reg_framer_t *f, size_t max);
void hsp_reg_framer_free(hsp_reg_framer_t *f);
/* Feeds received bytes; calls cb once per complete message (the pointer is valid during the
 * call only). A cb returning non-zero stops and that value is returned. Returns 0, or
 * HSP_REG_EINVAL for a length over max (the stream cannot be resynchronised: close it), or
 * HSP_REG_ENOMEM. */
int hsp_reg_framer_push(hsp_reg_framer_t *f, const uint8_t *data, size_t len,
                        int (*cb)(void *ud, const uint8_t *msg, size_t len), void *ud);
/* A malloc'd copy of msg with its length header in front (*out_len = len + 4). */
uint8_t *hsp_reg_frame_encode(const uint8_t *msg, size_t len, size_t *out_len);

#endif
