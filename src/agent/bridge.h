/*
 * A TCP connection joined to a HyperDHT connection: bytes flow both ways until both sides
 * have ended, or either fails. The service joins each incoming HyperDHT connection to the
 * local TCP service; the proxy joins each accepted TCP connection to a remote instance.
 *
 * The two ends are attached separately (a TCP connect or accept, a HyperDHT connect or
 * incoming connection); bytes start flowing once both are there. HyperDHT data that
 * arrives before the TCP end is connected waits (up to HSP_AGENT_BRIDGE_HOLD bytes).
 * Back-pressure both ways: TCP reading pauses while more than HSP_AGENT_BRIDGE_HIGH bytes
 * wait for the peer's acknowledgement, and HyperDHT reading pauses while more than that
 * waits to be written to TCP. An end's EOF half-closes the other end.
 */
#ifndef HSP_AGENT_BRIDGE_H
#define HSP_AGENT_BRIDGE_H

#include <uv.h>

#include "hyper_conn.h"

#define HSP_AGENT_BRIDGE_HIGH (1u << 20)
#define HSP_AGENT_BRIDGE_HOLD (4u << 20)

typedef struct hsp_agent_bridge hsp_agent_bridge_t;
/* Runs once, after both ends are released. */
typedef void (*hsp_agent_bridge_done_cb)(void *ctx, hsp_agent_bridge_t *b);

hsp_agent_bridge_t *hsp_agent_bridge_new(uv_loop_t *loop, hsp_agent_bridge_done_cb done, void *ctx);
/* The bridge's TCP handle (initialised), to accept a connection into; then call
 * hsp_agent_bridge_tcp_ready. */
uv_tcp_t *hsp_agent_bridge_tcp(hsp_agent_bridge_t *b);
void hsp_agent_bridge_tcp_ready(hsp_agent_bridge_t *b);
/* Connects the TCP end to addr. */
int hsp_agent_bridge_connect(hsp_agent_bridge_t *b, const struct sockaddr *addr);
/* Attaches the HyperDHT end (the bridge takes it over). */
void hsp_agent_bridge_attach(hsp_agent_bridge_t *b, hsp_dht_conn_t *conn);
/* Same, with a first message already read from conn (first may be NULL). */
void hsp_agent_bridge_attach_first(hsp_agent_bridge_t *b, hsp_dht_conn_t *conn,
                                   const uint8_t *first, size_t len);
/* Tears both ends down. */
void hsp_agent_bridge_close(hsp_agent_bridge_t *b);

#endif
