/*
 * An encrypted hyperdht connection: a UDX stream wrapped in secret-stream with the keys of
 * the Noise IK handshake (no in-band handshake, only the secret-stream headers), as
 * hyperdht 6.34 builds it. Created by hsp_dht_connect (initiator); the object is owned by
 * the library and freed right after its close callback returns.
 *
 * hsp_dht_connect (client side, connect.js): FIND_PEER for H(public key) (the relays of the
 * last connect to that key get the handshake first), PEER_HANDSHAKE through the first node
 * with a route, then:
 *   - the server is reachable (OPEN) or answered directly: connect to it at once;
 *   - we are reachable: wait for the server's first packet (10 s);
 *   - same public host: ping the server's nearest LAN address and connect there, racing
 *   - the holepunch: PEER_HOLEPUNCH rounds from a pool socket (probe round, punch round, then
 *     the punch.h schedule; hyperdht.md §4.4) and a connect over the punched path;
 *   - with relayThrough (ours or the server's): blind relay pairing in parallel (relay.h);
 *     whichever path connects first is kept (a relayed stream is not upgraded later).
 * Two randomizing NATs without a relay fail with HSP_DHT_CONN_EDOUBLERANDOM (or
 * HSP_DHT_CONN_EREMOTEABORTED when the server refuses first), as the reference.
 */
#ifndef HSP_DHT_HYPER_CONN_H
#define HSP_DHT_HYPER_CONN_H

#include <sys/types.h>
#include <sys/uio.h>

#include "dht_io.h"
#include "hyper_crypto.h"
#include "secretstream.h"

enum hsp_dht_conn_error {
  HSP_DHT_CONN_EOF = -40,            /* read callback: the peer ended its side */
  HSP_DHT_CONN_ENOTFOUND = -41,      /* PEER_NOT_FOUND: no node had a route */
  HSP_DHT_CONN_EFAILED = -42,        /* PEER_CONNECTION_FAILED: no handshake reply */
  HSP_DHT_CONN_ESERVER = -43,        /* SERVER_ERROR / SERVER_INCOMPATIBLE / bad reply */
  HSP_DHT_CONN_ECANNOTPUNCH = -44,   /* CANNOT_HOLEPUNCH: the server gave no relays */
  HSP_DHT_CONN_ETIMEDOUT = -45,
  HSP_DHT_CONN_EPUNCHABORTED = -46,  /* HOLEPUNCH_ABORTED: punching ran out, or was refused */
  HSP_DHT_CONN_EPROBETIMEOUT = -47,  /* HOLEPUNCH_PROBE_TIMEOUT: a NAT stayed unclassified */
  HSP_DHT_CONN_EDOUBLERANDOM = -48,  /* HOLEPUNCH_DOUBLE_RANDOMIZED_NATS */
  HSP_DHT_CONN_EREMOTEABORTED = -49, /* REMOTE_ABORTED / REMOTE_NOT_HOLEPUNCHING */
  HSP_DHT_CONN_ENOTPUNCHABLE = -50,  /* REMOTE_NOT_HOLEPUNCHABLE */
  HSP_DHT_CONN_ERELAYABORTED = -51,  /* RELAY_ABORTED: blind relay pairing failed */
};
const char *hsp_dht_conn_strerror(int err);

typedef struct hsp_dht_conn hsp_dht_conn_t;
/* Data (len > 0), or end of the peer's side (buf NULL, len HSP_DHT_CONN_EOF). */
typedef void (*hsp_dht_conn_read_cb)(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len);
/* Last callback: status 0 after a clean close, else a negative error. */
typedef void (*hsp_dht_conn_close_cb)(hsp_dht_conn_t *c, int status);
typedef void (*hsp_dht_conn_write_cb)(void *ctx, int status);

void hsp_dht_conn_set_callbacks(hsp_dht_conn_t *c, hsp_dht_conn_read_cb on_read,
                                hsp_dht_conn_close_cb on_close, void *user);
void *hsp_dht_conn_user(const hsp_dht_conn_t *c);
/* Copies buf; cb (may be NULL) runs once the peer acknowledged every byte. */
int hsp_dht_conn_write(hsp_dht_conn_t *c, const uint8_t *buf, size_t len,
                       hsp_dht_conn_write_cb cb, void *ctx);
/* Same, the bytes gathered from iov (copied once, into the sealed messages). */
int hsp_dht_conn_writev(hsp_dht_conn_t *c, const struct iovec *iov, size_t iovcnt,
                        hsp_dht_conn_write_cb cb, void *ctx);
/* Bytes written but not yet acknowledged (back-pressure). */
size_t hsp_dht_conn_write_queue_size(const hsp_dht_conn_t *c);
/* Read back-pressure. read_stop pauses delivery to the read callback (it may be called
 * from inside it: nothing more is delivered until read_start); UDX then buffers at most its
 * receive window (4 MiB by default) and advertises a shrinking window, so the peer stops
 * sending. read_start resumes delivery from the loop (never from inside the call), in
 * order, end of stream included. Both are idempotent. */
int hsp_dht_conn_read_stop(hsp_dht_conn_t *c);
int hsp_dht_conn_read_start(hsp_dht_conn_t *c);
/* Received bytes held for this connection and not yet delivered (UDX buffers, in order and
 * out of order, plus messages held by a pause). */
size_t hsp_dht_conn_read_queue_size(const hsp_dht_conn_t *c);
/* Half-close our side after everything written so far. */
int hsp_dht_conn_end(hsp_dht_conn_t *c);
void hsp_dht_conn_destroy(hsp_dht_conn_t *c);
const uint8_t *hsp_dht_conn_remote_public_key(const hsp_dht_conn_t *c);
/* Where the stream's packets go: the peer (direct or holepunched path). False before start. */
bool hsp_dht_conn_remote_address(const hsp_dht_conn_t *c, hsp_ipv4_addr_t *out);

/* cb gets an open connection (set its callbacks inside cb) or an error. */
typedef void (*hsp_dht_connect_cb)(void *ctx, hsp_dht_conn_t *conn, int err);
int hsp_dht_connect(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                    const uint8_t remote_public_key[32], hsp_dht_connect_cb cb, void *ctx);
typedef struct hsp_dht_connect_opts {
  /* connect.js localConnection (default true): share our LAN addresses and, when the server
   * shares our public host, try its LAN address first. false forces the holepunch path. */
  bool local_connection;
  /* connect.js relayThrough: the public key (32 bytes) of a blind relay server to pair
   * through while punching (NULL = none; a server's own relayThrough wins). The connection
   * then opens relayed when no direct path is found (it is not upgraded later). */
  const uint8_t *relay_through;
} hsp_dht_connect_opts_t;
int hsp_dht_connect_with(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                         const uint8_t remote_public_key[32], const hsp_dht_connect_opts_t *opts,
                         hsp_dht_connect_cb cb, void *ctx);

#endif
