/*
 * dht-rpc v6 datagrams (docs/protocol/dht-rpc.md §2), byte-compatible with dht-rpc 6.27.
 *
 *   request  = 0x03 flags(uint) tid(u16) to(ipv4) [id 32 if f&1] [token 32 if f&2]
 *              command(uint) [target 32 if f&8] [value buffer if f&16]        (f&4 = internal)
 *   response = 0x13 flags(uint) tid(u16) to(ipv4) [id 32 if f&1] [token 32 if f&2]
 *              [closerNodes array(ipv4) if f&4] [error uint if f&8] [value buffer if f&16]
 *
 * Decoding is zero-copy: byte fields point into the datagram, so a decoded message lives
 * only as long as the input buffer. Like the reference, decoders ignore unknown flag bits
 * and trailing bytes, and do not validate `id` (the node compares it with the source).
 */
#ifndef HSP_DHT_MESSAGES_H
#define HSP_DHT_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compact.h"

#define HSP_DHT_ID_SIZE 32
#define HSP_DHT_TOKEN_SIZE 32
#define HSP_DHT_VERSION 3
#define HSP_DHT_TYPE_REQUEST 0x03
#define HSP_DHT_TYPE_RESPONSE 0x13
/* The largest UDP payload over IPv4; no encoder ever produces more. */
#define HSP_DHT_MAX_DATAGRAM 65507

/* Request flag bits. */
#define HSP_DHT_REQ_ID 0x01
#define HSP_DHT_REQ_TOKEN 0x02
#define HSP_DHT_REQ_INTERNAL 0x04
#define HSP_DHT_REQ_TARGET 0x08
#define HSP_DHT_REQ_VALUE 0x10
/* Response flag bits. */
#define HSP_DHT_RES_ID 0x01
#define HSP_DHT_RES_TOKEN 0x02
#define HSP_DHT_RES_CLOSER 0x04
#define HSP_DHT_RES_ERROR 0x08
#define HSP_DHT_RES_VALUE 0x10

/* Internal commands (internal flag set). */
enum hsp_dht_internal_command {
  HSP_DHT_CMD_PING = 0,
  HSP_DHT_CMD_PING_NAT = 1,
  HSP_DHT_CMD_FIND_NODE = 2,
  HSP_DHT_CMD_DOWN_HINT = 3,
  HSP_DHT_CMD_DELAYED_PING = 4,
};

/* Error codes carried in responses (0 = OK is never encoded). */
enum hsp_dht_wire_error {
  HSP_DHT_WIRE_OK = 0,
  HSP_DHT_WIRE_UNKNOWN_COMMAND = 1,
  HSP_DHT_WIRE_INVALID_TOKEN = 2,
};

/* Library error codes (negative), shared by every src/dht module. */
enum hsp_dht_error {
  HSP_DHT_OK = 0,
  HSP_DHT_EMALFORMED = -1,   /* datagram does not decode */
  HSP_DHT_ETYPE = -2,        /* byte 0 is neither 0x03 nor 0x13 */
  HSP_DHT_ENOBUFS = -3,      /* output buffer too small */
  HSP_DHT_ERANGE = -4,       /* value out of range for the wire format */
  HSP_DHT_ENOMEM = -5,
  HSP_DHT_ETIMEDOUT = -6,    /* REQUEST_TIMEOUT: no reply after all retries */
  HSP_DHT_EDESTROYED = -7,   /* REQUEST_DESTROYED: cancelled or node destroyed */
  HSP_DHT_EINVAL = -8,
  HSP_DHT_ETOOFEW = -9,      /* query: "Too few nodes responded" */
  HSP_DHT_ENOTOKEN = -10,    /* commit: "No token received for closest node" */
  HSP_DHT_EVERSION = -11,    /* hyperdht noise payload with version != 1 */
  HSP_DHT_ESIGNATURE = -12,  /* hyperdht signature does not verify */
};
const char *hsp_dht_strerror(int err);

/* 6-byte wire form of an address, the input of the node id hash. */
void hsp_dht_addr_to_wire(uint8_t out[HSP_CENC_IPV4_ADDR_SIZE], const hsp_ipv4_addr_t *a);
hsp_ipv4_addr_t hsp_dht_addr_from_wire(const uint8_t in[HSP_CENC_IPV4_ADDR_SIZE]);
bool hsp_dht_addr_equal(const hsp_ipv4_addr_t *a, const hsp_ipv4_addr_t *b);

typedef struct hsp_dht_request {
  uint16_t tid;
  hsp_ipv4_addr_t to;
  bool internal;
  const uint8_t *id;     /* NULL = absent */
  const uint8_t *token;  /* NULL = absent */
  uint64_t command;
  const uint8_t *target; /* NULL = absent */
  bool has_value;        /* an empty value is still present (flag set, length 0) */
  hsp_bytes_t value;
} hsp_dht_request_t;

typedef struct hsp_dht_response {
  uint16_t tid;
  hsp_ipv4_addr_t to;
  const uint8_t *id;
  const uint8_t *token;
  /* Closer nodes in wire form: closer_count entries of 6 bytes each (no ids on the wire).
   * The encoder omits the field when closer_count is 0, as the reference does. */
  const uint8_t *closer;
  size_t closer_count;
  uint64_t error; /* 0 = absent */
  bool has_value;
  hsp_bytes_t value;
} hsp_dht_response_t;

/* Kind of a datagram from byte 0: HSP_DHT_TYPE_REQUEST, HSP_DHT_TYPE_RESPONSE, or 0 for
 * anything the DHT must drop (shorter than 2 bytes, other byte 0). */
int hsp_dht_message_type(const uint8_t *buf, size_t len);

/* Decode a whole datagram including byte 0. Return 0 or a negative hsp_dht_error. */
int hsp_dht_request_decode(hsp_dht_request_t *out, const uint8_t *buf, size_t len);
int hsp_dht_response_decode(hsp_dht_response_t *out, const uint8_t *buf, size_t len);

/* Encoded size, or a negative error (value too large for a datagram). */
long hsp_dht_request_size(const hsp_dht_request_t *m);
long hsp_dht_response_size(const hsp_dht_response_t *m);
/* Encode into buf; return the number of bytes written or a negative error. */
long hsp_dht_request_encode(uint8_t *buf, size_t len, const hsp_dht_request_t *m);
long hsp_dht_response_encode(uint8_t *buf, size_t len, const hsp_dht_response_t *m);

#endif
