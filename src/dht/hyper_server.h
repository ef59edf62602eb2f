/*
 * A hyperdht server (hyperdht 6.34 server.js, hyperdht.md §3): announces H(public key) via
 * the announcer, answers PEER_HANDSHAKE (directly or relayed by a DHT node) as the Noise IK
 * responder, asks the firewall callback about the client's static key (reject = no reply at
 * all, as the reference), and hands each connection over once its UDX stream is connected:
 *   - at once when the client is reachable (OPEN) or asked us directly;
 *   - else on the client's first UDX packet (within 10 s, longer while punching), from
 *     wherever it arrives: our DHT socket (LAN shortcut; the reply then leaves from it), or
 *     the session's puncher socket, from which the reply left so the client learns its
 *     public address; PEER_HOLEPUNCH rounds are answered after our NAT analysis (fast-mode
 *     probe, punching, TRY_LATER when a random punch is rate-limited; puncher.h);
 *   - or through the client's blind relay (relayThrough) once paired (relay.h).
 * Servers do not configure a relayThrough of their own.
 */
#ifndef HSP_DHT_HYPER_SERVER_H
#define HSP_DHT_HYPER_SERVER_H

#include "hyper_conn.h"

typedef struct hsp_dht_server hsp_dht_server_t;
/* Return true to reject the client with this static key. */
typedef bool (*hsp_dht_server_firewall_cb)(void *ctx, const uint8_t remote_public_key[32]);
/* An open connection: set its callbacks inside. */
typedef void (*hsp_dht_server_connection_cb)(void *ctx, hsp_dht_conn_t *conn);

int hsp_dht_server_listen(hsp_dht_server_t **out, hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                          hsp_dht_server_firewall_cb firewall,
                          hsp_dht_server_connection_cb on_connection, void *ctx);
/* Unannounces, then frees the server and calls cb (may be NULL). Connections already
 * handed over stay open. */
void hsp_dht_server_close(hsp_dht_server_t *s, void (*cb)(void *ctx), void *ctx);

#endif
