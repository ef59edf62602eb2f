/*
 * Channel multiplexer, wire-compatible with npm protomux 3.12.x, sans-I/O.
 *
 * One mux runs over one message stream (secret-stream: each message is one frame). It turns
 * received frames into channel events and channel operations into frames to send. The proxy
 * opens one channel per accepted TCP connection on a session it keeps warm.
 *
 * Frame layout (compact-encoding uints):
 *   frame   = channel type payload        channel = the SENDER's local id, 0 = control
 *   control type 0, batch:  first-channel *( len item / 0x00 channel )
 *                           item = type payload, for the current channel (0 included)
 *           type 1, open:   local-id protocol(string) id(optionalBuffer: 0 = none) handshake(rest)
 *           type 2, reject: the opener's local id
 *           type 3, close:  the closer's local id
 *   channel N > 0:          type = message index chosen by the application, payload = rest
 *
 * Pairing: a channel is known by (protocol, id). Each side sends its own open with its own
 * local id; an open from the peer pairs with the oldest local channel of the same key that is
 * still waiting, otherwise it is an open request the application accepts (by opening a
 * channel with that key during the on_open_request callback) or leaves (then it is rejected).
 * The peer's ids must grow by at most one at a time. A close is not acknowledged; a local id
 * closed before pairing is reused only after the peer's open or reject for it arrived.
 * Messages received for unknown or closed channels are ignored, as the reference does.
 *
 * Deviations from the reference: an open for channel 0 is ignored (the reference answers it
 * with a malformed reject); batches nest at most HSP_MUX_MAX_NESTING deep (the reference
 * recurses without bound); an open request must be answered during its callback, so there is
 * never a backlog of messages for unaccepted channels to buffer; a reject for a channel that
 * is already paired closes that channel, and one for a free id is ignored (protomux 3.12 can
 * send those after a race in its own pairing state, then destroys the whole stream).
 */
#ifndef HSP_AGENT_MUX_H
#define HSP_AGENT_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HSP_MUX_MAX_PROTOCOL 255  /* bytes in a protocol name we open */
#define HSP_MUX_MAX_ID 64         /* bytes in a channel id we open */
#define HSP_MUX_MAX_CHANNELS (1u << 20)
#define HSP_MUX_MAX_NESTING 4
#define HSP_MUX_MAX_BATCH (8u * 1024 * 1024) /* a corked batch is sent when it reaches this */

enum hsp_mux_error {
  HSP_MUX_EPROTO = -1, /* malformed frame or invalid open/reject: end the session */
  HSP_MUX_ENOMEM = -2,
  HSP_MUX_EINVAL = -3, /* unknown or closed channel, bad argument */
  HSP_MUX_EEXIST = -4, /* a unique channel with this key is already open */
  HSP_MUX_ESEND = -5,  /* the send callback failed */
};
const char *hsp_mux_strerror(int err);

typedef struct hsp_mux hsp_mux_t;

typedef struct hsp_mux_open_request {
  const uint8_t *protocol;
  size_t protocol_len;
  const uint8_t *id; /* NULL when the open carries no id */
  size_t id_len;
  const uint8_t *handshake;
  size_t handshake_len;
} hsp_mux_open_request_t;

typedef struct hsp_mux_callbacks {
  /* One frame to send: a then b (b may be empty). Return 0, or negative on failure. */
  int (*send)(void *data, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
  /* The peer opened a channel nobody here waits for. Call hsp_mux_open with the same
   * protocol and id now to accept it; otherwise it is rejected when this returns. */
  void (*on_open_request)(void *data, hsp_mux_t *mux, const hsp_mux_open_request_t *req);
  /* A channel is paired; the peer's handshake bytes (views, valid during the call). */
  void (*on_open)(void *data, hsp_mux_t *mux, uint32_t ch, void *user, const uint8_t *hs,
                  size_t hslen);
  void (*on_message)(void *data, hsp_mux_t *mux, uint32_t ch, void *user, uint64_t type,
                     const uint8_t *payload, size_t len);
  /* The peer closed or rejected the channel, or the mux shut down; the id is gone. */
  void (*on_close)(void *data, hsp_mux_t *mux, uint32_t ch, void *user);
} hsp_mux_callbacks_t;

/* Returns NULL when out of memory. */
hsp_mux_t *hsp_mux_new(const hsp_mux_callbacks_t *cb, void *data);
/* Closes every channel (on_close for each, as when the stream ends) and frees the mux. */
void hsp_mux_destroy(hsp_mux_t *mux);

/* One frame received. Returns 0, or a negative error after which the session should end. */
int hsp_mux_recv(hsp_mux_t *mux, const uint8_t *frame, size_t len);

/* Opens a channel (or accepts the pending open request with the same key). `unique` refuses
 * a second open channel with the same key, as the reference's default does. On success
 * *ch is the local id (> 0) used by the other calls. */
int hsp_mux_open(hsp_mux_t *mux, const uint8_t *protocol, size_t protocol_len,
                 const uint8_t *id, size_t id_len, bool has_id, const uint8_t *handshake,
                 size_t handshake_len, bool unique, void *user, uint32_t *ch);
/* Sends a message; allowed from open until close (before pairing too). */
int hsp_mux_send(hsp_mux_t *mux, uint32_t ch, uint64_t type, const uint8_t *payload,
                 size_t len);
/* Closes a channel; no on_close follows for it. */
int hsp_mux_close(hsp_mux_t *mux, uint32_t ch);
/* Bounds a batch frame (default HSP_MUX_MAX_BATCH): a corked frame that would make the batch
 * larger flushes it first, and one that fits no batch goes out alone. For transports whose
 * messages are bounded (one secret-stream message of 64 KiB per write). */
void hsp_mux_set_max_batch(hsp_mux_t *mux, size_t max);
/* While corked, frames are gathered into one batch frame sent at the last uncork. */
void hsp_mux_cork(hsp_mux_t *mux);
int hsp_mux_uncork(hsp_mux_t *mux);

bool hsp_mux_is_open(const hsp_mux_t *mux, uint32_t ch); /* paired and not closed */
void *hsp_mux_user(const hsp_mux_t *mux, uint32_t ch);    /* NULL once closed */
size_t hsp_mux_channel_count(const hsp_mux_t *mux);       /* opened and not closed */

#endif
