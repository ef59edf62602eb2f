/*
 * Blind relay pairing, client side of npm blind-relay 1.6 (hyperdht.md §5): a hyperdht
 * connection to the relay server's key, one Protomux channel "blind-relay" (id = our public
 * key, no handshake) and a `pair` message {isInitiator, token, id = our UDX stream id, seq 0}.
 * The relay answers `pair` with the id of its stream for our side; our stream then connects
 * to that id over the relay connection's socket and address, and the relay forwards UDX
 * packets between the two paired peers (it never sees plaintext).
 *
 * Wire: protomux frames, one per secret-stream message: open = 00 01 localId
 * string(protocol) optionalBuffer(id); message = localId type body; batch = 00 00 localId
 * then buffer(type body)... where an empty buffer (00) is followed by the next localId; reject =
 * 00 02 remoteId; close = 00 03 localId. pair = flags(1 byte, bit0 isInitiator) token(32)
 * id(uint) seq(uint), message type 0.
 */
#ifndef HSP_DHT_RELAY_H
#define HSP_DHT_RELAY_H

#include "hyper_conn.h"

#define HSP_DHT_RELAY_TIMEOUT_MS 15000

typedef struct hsp_dht_relay hsp_dht_relay_t;
/* err 0: connect the stream to (socket, to) with remote id `remote_id`. Runs once. */
typedef void (*hsp_dht_relay_cb)(void *ctx, int err, int socket, const hsp_ipv4_addr_t *to,
                                 uint32_t remote_id);

int hsp_dht_relay_pair(hsp_dht_relay_t **out, hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                       const uint8_t relay_public_key[32], bool initiator,
                       const uint8_t token[32], uint32_t stream_id, hsp_dht_relay_cb cb,
                       void *ctx);
/* The relay connection's socket and remote address (false before it is connected): packets
 * from there are relayed, not a direct path. */
bool hsp_dht_relay_path(const hsp_dht_relay_t *r, int *socket, hsp_ipv4_addr_t *addr);
/* Tears the relay connection down (the paired stream stops working); no callback after. */
void hsp_dht_relay_destroy(hsp_dht_relay_t *r);

/* Frame codec, exposed for tests and the fuzzer: encode our open + pair; parse one incoming
 * frame, returning 1 with *remote_id set when it carries a pair answer for `token`, 0 when it
 * is something else we accept, or a negative error (reject/close/malformed). */
long hsp_dht_relay_encode_open(uint8_t *buf, size_t cap, const uint8_t id[32]);
long hsp_dht_relay_encode_pair(uint8_t *buf, size_t cap, bool initiator, const uint8_t token[32],
                               uint32_t stream_id);
int hsp_dht_relay_parse(const uint8_t *buf, size_t len, const uint8_t token[32],
                        uint32_t *remote_id);

#endif
