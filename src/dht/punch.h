/*
 * Holepunch planning (hyperdht 6.34 lib/holepuncher.js `_punch`, docs/protocol/hyperdht.md
 * §4.6) as a sans-I/O schedule: the caller asks for due actions and performs them (send a
 * 1-byte probe from socket i with an IP TTL, or open one more pool socket). OPEN counts as
 * CONSISTENT.
 *
 *   CONSISTENT / CONSISTENT: every 1 s, 10 rounds, a TTL-64 probe to each remote address
 *     (unverified ones only every 4th round); the responder waits 1 s first.
 *   CONSISTENT / RANDOM: needs a verified remote address; probes to verifiedHost:random port
 *     in [1000, 65535] every 20 ms, 1750 times.
 *   RANDOM / CONSISTENT ("birthday"): open sockets until 256, each sending one TTL-5 probe to
 *     the verified address; after 100 ms cycle probes over all sockets every 20 ms, 1750
 *     times, the first pass at TTL 5.
 *   RANDOM / RANDOM, or no verified address where one is needed: cannot punch.
 */
#ifndef HSP_DHT_PUNCH_H
#define HSP_DHT_PUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compact.h"

#define HSP_DHT_HOLEPUNCH_TTL 5
#define HSP_DHT_DEFAULT_TTL 64
#define HSP_DHT_BIRTHDAY_SOCKETS 256
#define HSP_DHT_PUNCH_MAX_REMOTE 16

enum hsp_dht_punch_strategy {
  HSP_DHT_PUNCH_NONE = 0,
  HSP_DHT_PUNCH_CONSISTENT,
  HSP_DHT_PUNCH_RANDOM_PORTS, /* we are consistent, the remote is random */
  HSP_DHT_PUNCH_BIRTHDAY,     /* we are random, the remote is consistent */
};

enum hsp_dht_punch_action_kind {
  HSP_DHT_PUNCH_PROBE = 1,   /* send a 1-byte datagram 0x00 from socket `socket` to `to` */
  HSP_DHT_PUNCH_OPEN_SOCKET, /* open pool socket number `socket` (then its probe follows) */
  HSP_DHT_PUNCH_DONE,        /* schedule exhausted: abort unless connected */
};

typedef struct hsp_dht_punch_action {
  int kind;
  size_t socket; /* 0 = the puncher socket; 1.. = birthday sockets */
  hsp_ipv4_addr_t to;
  uint8_t ttl;
} hsp_dht_punch_action_t;

typedef struct hsp_dht_punch {
  int strategy;
  bool initiator, stopped, done;
  hsp_ipv4_addr_t remote[HSP_DHT_PUNCH_MAX_REMOTE];
  bool verified[HSP_DHT_PUNCH_MAX_REMOTE];
  size_t nremote;
  hsp_ipv4_addr_t target; /* the verified address (random/birthday) */
  uint64_t deadline;
  int tries;       /* rounds left / done */
  size_t index;    /* next address or socket in the current round */
  size_t sockets;  /* sockets open (birthday) */
  int low_ttl_rounds;
  bool opening;    /* birthday: still opening sockets */
  uint64_t (*random)(void *ctx);
  void *random_ctx;
} hsp_dht_punch_t;

/* firewall values as in hyper_messages.h (0 UNKNOWN, 1 OPEN, 2 CONSISTENT, 3 RANDOM). */
int hsp_dht_punch_strategy(int local_firewall, int remote_firewall, bool has_verified_remote);

/* Plan a punch. remote/verified: the remote's addresses and which are verified (echoed
 * token). random (NULL = libsodium) draws random ports. Returns the strategy, 0 if none. */
int hsp_dht_punch_init(hsp_dht_punch_t *p, int local_firewall, int remote_firewall,
                       const hsp_ipv4_addr_t *remote, const bool *verified, size_t nremote,
                       bool initiator, uint64_t now, uint64_t (*random)(void *), void *ctx);
uint64_t hsp_dht_punch_deadline(const hsp_dht_punch_t *p); /* UINT64_MAX when finished */
/* Next action due at `now`; false when nothing is due yet. Call until false. */
bool hsp_dht_punch_next(hsp_dht_punch_t *p, uint64_t now, hsp_dht_punch_action_t *out);
/* Connected (or aborted): no more actions. */
void hsp_dht_punch_stop(hsp_dht_punch_t *p);

/* connect.js probeRound, after the probe reply and our NAT analysis: punch, probe once more
 * (remote NAT still UNKNOWN or no relay token yet, and a retry left), or abort. */
enum hsp_dht_probe_verdict {
  HSP_DHT_PROBE_PUNCH = 1,
  HSP_DHT_PROBE_AGAIN,
  HSP_DHT_PROBE_ABORT_TIMEOUT, /* HOLEPUNCH_PROBE_TIMEOUT: a NAT is still UNKNOWN */
  HSP_DHT_PROBE_ABORT_RANDOM,  /* HOLEPUNCH_DOUBLE_RANDOMIZED_NATS */
};
int hsp_dht_probe_verdict(int local_firewall, int remote_firewall, bool have_token,
                          bool may_retry);

/* server.js _onpeerholepunch, after our NAT analysis: what to answer. */
enum hsp_dht_serve_verdict {
  HSP_DHT_SERVE_REPLY = 1,  /* answer with our NAT view */
  HSP_DHT_SERVE_PUNCH,      /* the client punches: start punching, then answer */
  HSP_DHT_SERVE_ABORT,      /* unstable NAT and the client is not punching */
  HSP_DHT_SERVE_TRY_LATER,  /* a random punch would exceed the rate limit */
};
int hsp_dht_serve_verdict(int local_firewall, int remote_firewall, bool remote_punching,
                          bool random_punch_allowed);

/* Random punches per DHT instance (hyperdht index.js randomPunchLimit / randomPunchInterval):
 * at most 1 at a time, and 20 s from the end of one to the start of the next. */
#define HSP_DHT_RANDOM_PUNCH_INTERVAL_MS 20000
typedef struct hsp_dht_punch_limit {
  int active;
  bool ended_once;
  uint64_t last_end;
} hsp_dht_punch_limit_t;
bool hsp_dht_punch_limit_allowed(const hsp_dht_punch_limit_t *l, uint64_t now);
void hsp_dht_punch_limit_begin(hsp_dht_punch_limit_t *l);
void hsp_dht_punch_limit_end(hsp_dht_punch_limit_t *l, uint64_t now);
/* Whether a punch between these NATs counts as random (either side RANDOM). */
bool hsp_dht_punch_is_random(int local_firewall, int remote_firewall);

/* The npm `bogon` classes hyperdht uses: private = 10/8, 100.64/10, 127/8, 169.254/16,
 * 172.16/12, 192.168/16; reserved = 0/8, 192.0.0/24, the TEST-NETs (192.0.2/24,
 * 198.51.100/24, 203.0.113/24), 198.18/15, multicast and above. bogon = either. */
bool hsp_dht_ip_private(const uint8_t host[4]);
bool hsp_dht_ip_reserved(const uint8_t host[4]);
bool hsp_dht_ip_bogon(const uint8_t host[4]);

/* holepuncher.js matchAddress: the remote LAN address sharing the longest prefix (/24, then
 * /16, then /8) with one of ours; -1 when none shares even the first byte. */
int hsp_dht_match_address(const hsp_ipv4_addr_t *local, size_t nlocal,
                          const hsp_ipv4_addr_t *remote, size_t nremote);

#endif
