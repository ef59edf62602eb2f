/*
 * hyperdht client operations on top of the dht-rpc query engine (hyperdht 6.34 index.js
 * announce, lookup, unannounce, mutablePut/Get, immutablePut/Get): each is one iterative
 * query plus, for writes, a commit round whose value is built per closest node (announce
 * signatures cover that node's id and token).
 *
 * Replies reach cbs->on_reply with their raw value (decode with hyper_messages.h);
 * cbs->on_done reports the commit result. Writes fail with HSP_DHT_ETOOFEW when no node
 * answered.
 */
#ifndef HSP_DHT_HYPER_CLIENT_H
#define HSP_DHT_HYPER_CLIENT_H

#include "dht.h"
#include "hyper_crypto.h"

/* Announce keypair's public key (with up to 3 relay addresses) under topic. A self-announce
 * (topic == H(public key)) makes the storing nodes route handshakes to us. */
long hsp_dht_announce(hsp_dht_node_t *node, const uint8_t topic[32], const hsp_crypto_keypair_t *kp,
                      const hsp_ipv4_addr_t *relays, size_t relay_count,
                      const hsp_dht_query_cbs_t *cbs);
/* Remove our record from the closest nodes of topic. */
long hsp_dht_unannounce(hsp_dht_node_t *node, const uint8_t topic[32], const hsp_crypto_keypair_t *kp,
                        const hsp_dht_query_cbs_t *cbs);
/* LOOKUP query: every reply value is a lookupRawReply. */
long hsp_dht_lookup(hsp_dht_node_t *node, const uint8_t topic[32], const hsp_dht_query_cbs_t *cbs);
/* FIND_PEER query for a server's public key: reply values are peer records. */
long hsp_dht_find_peer(hsp_dht_node_t *node, const uint8_t public_key[32],
                       const hsp_dht_query_cbs_t *cbs);

long hsp_dht_mutable_put(hsp_dht_node_t *node, const hsp_crypto_keypair_t *kp, uint64_t seq,
                         const uint8_t *value, size_t len, const hsp_dht_query_cbs_t *cbs);
/* Reply values are mutableGetResponse; verify each with hsp_dht_mutable_verify. */
long hsp_dht_mutable_get(hsp_dht_node_t *node, const uint8_t public_key[32], uint64_t min_seq,
                         const hsp_dht_query_cbs_t *cbs);
long hsp_dht_immutable_put(hsp_dht_node_t *node, const uint8_t *value, size_t len,
                           const hsp_dht_query_cbs_t *cbs);
/* Reply values are raw; accept the first whose hash equals the target. */
long hsp_dht_immutable_get(hsp_dht_node_t *node, const uint8_t target[32],
                           const hsp_dht_query_cbs_t *cbs);

#endif
