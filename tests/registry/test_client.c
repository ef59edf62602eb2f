/* The service side against the server on a simulated clock: leases kept for a minute,
 * lost answers, a registry that restarts empty, a paused service, clock steps, shutdown. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "client.h"
#include "server.h"

static uint8_t reg_pk[32], reg_sk[64];
static hsp_reg_client_t cl;
static hsp_reg_server_t *srv;
static bool drop_next_answer;
static int answers;

static void to_client(void *ud, uint64_t conn, const uint8_t *msg, size_t len) {
  uint64_t now = *(uint64_t *)ud;
  if (conn != 1) return;
  if (drop_next_answer) {
    drop_next_answer = false;
    return;
  }
  answers++;
  hsp_reg_client_receive(&cl, msg, len, now);
}

static uint64_t now;

/* One step of both event loops at time `now`. */
static void pump(void) {
  hsp_reg_server_tick(srv, now);
  uint8_t *out;
  long n = hsp_reg_client_tick(&cl, now, &out);
  CHECK(n >= 0);
  if (n > 0) hsp_reg_server_handle(srv, 1, out, (size_t)n, now);
  free(out);
}

static bool present(hsp_store_t *st) {
  hsp_reg_instance_t in;
  return hsp_store_get(st, cl.pk, &in) == 0;
}

int main(void) {
  CHECK(sodium_init() >= 0);
  crypto_sign_keypair(reg_pk, reg_sk);
  uint8_t pk[32], sk[64];
  crypto_sign_keypair(pk, sk);
  now = 1700000000000ull;
  CHECK_EQ_INT(hsp_reg_client_init(&cl, reg_pk, sk, "couchdb", "3.2.2", "{\"port\":5984}", 15000), 0);
  CHECK_EQ_INT(hsp_reg_client_init(&cl, reg_pk, sk, "couch db", "3.2.2", "", 15000), HSP_REG_EINVAL);
  CHECK_EQ_INT(hsp_reg_client_init(&cl, reg_pk, sk, "couchdb", "3.2", "", 15000), HSP_REG_EINVAL);
  CHECK_EQ_INT(hsp_reg_client_init(&cl, reg_pk, sk, "couchdb", "3.2.2", "{\"port\":5984}", 15000), 0);

  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = to_client, .ud = &now};
  srv = hsp_reg_server_new(&cfg);

  /* a minute of 250 ms steps: registered throughout, renewed at a third of the TTL */
  pump();
  CHECK_EQ_INT(cl.state, HSP_REG_CLIENT_REGISTERED);
  CHECK_EQ_INT(hsp_reg_client_next_timer(&cl), now + 5000);
  int gaps = 0;
  for (int i = 0; i < 240; i++) {
    now += 250;
    pump();
    if (!present(st)) gaps++;
  }
  CHECK_EQ_INT(gaps, 0);
  uint64_t seq;
  hsp_store_head(st, &seq, NULL);
  CHECK_EQ_INT(seq, 1 + 12); /* one register, a renew every 5 s */

  /* a lost answer: the renew is sent again after the retry interval, still a renew */
  now = cl.due_ms;
  drop_next_answer = true;
  pump();
  CHECK_EQ_INT(cl.state, HSP_REG_CLIENT_PENDING);
  now += cl.retry_ms;
  pump();
  CHECK_EQ_INT(cl.state, HSP_REG_CLIENT_REGISTERED);
  hsp_store_head(st, &seq, NULL);
  CHECK_EQ_INT(seq, 15);
  CHECK(present(st));

  /* the registry restarts from an empty store: renew -> ENOTFOUND -> register */
  hsp_reg_server_free(srv);
  hsp_store_close(st);
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  cfg.store = st;
  srv = hsp_reg_server_new(&cfg);
  now += 1000;
  hsp_reg_client_reconnected(&cl, now);
  pump();
  CHECK_EQ_INT(cl.last_error, HSP_REG_ENOTFOUND);
  CHECK(!present(st));
  pump();
  CHECK(present(st));
  CHECK_EQ_INT(cl.state, HSP_REG_CLIENT_REGISTERED);

  /* the service is frozen past its lease: expired by the registry; on waking it registers */
  now += 20000;
  hsp_reg_server_tick(srv, now);
  CHECK(!present(st));
  uint8_t *out;
  long n = hsp_reg_client_tick(&cl, now, &out);
  hsp_reg_msg_t m;
  CHECK_EQ_INT(hsp_reg_msg_decode(&m, out, (size_t)n), 0);
  CHECK_EQ_INT(m.type, HSP_REG_MSG_REGISTER);
  hsp_reg_server_handle(srv, 1, out, (size_t)n, now);
  free(out);
  CHECK(present(st));

  /* the host clock steps back 10 s: stamps stay increasing, requests still accepted */
  now = cl.due_ms - 10000;
  cl.due_ms = now;
  int before = answers;
  pump();
  CHECK_EQ_INT(answers, before + 1);
  CHECK_EQ_INT(cl.last_error, 0);
  CHECK_EQ_INT(cl.state, HSP_REG_CLIENT_REGISTERED);

  /* shutdown */
  n = hsp_reg_client_deregister(&cl, now, &out);
  CHECK(n > 0);
  hsp_reg_server_handle(srv, 1, out, (size_t)n, now);
  free(out);
  CHECK(!present(st));
  CHECK_EQ_INT(cl.state, HSP_REG_CLIENT_IDLE);
  n = hsp_reg_client_tick(&cl, now + 100000, &out);
  CHECK_EQ_INT(n, 0);

  /* the owner removes an instance it does not hold the key of */
  hsp_reg_client_t other;
  uint8_t opk[32], osk[64];
  crypto_sign_keypair(opk, osk);
  CHECK_EQ_INT(hsp_reg_client_init(&other, reg_pk, osk, "web", "1.0.0", "", 15000), 0);
  n = hsp_reg_client_tick(&other, now, &out);
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 2, out, (size_t)n, now), 0);
  free(out);
  n = hsp_reg_owner_deregister(reg_sk, opk, now, 77, &out);
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 2, out, (size_t)n, now), 0);
  free(out);
  hsp_reg_instance_t in;
  CHECK_EQ_INT(hsp_store_get(st, opk, &in), HSP_REG_ENOTFOUND);
  CHECK_EQ_INT(hsp_store_verify(st), 0);

  hsp_reg_server_free(srv);
  hsp_store_close(st);
  return check_summary("test_registry_client");
}
