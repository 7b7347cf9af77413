/* virtio-vsock part of virtio.elf: a polled, two-connection AF_VSOCK stream stack.
 *
 *   (a) listens on port 1234: the host connects (OP_REQUEST), the guest answers OP_RESPONSE,
 *       echoes every OP_RW back (printing what it echoed) until the host shuts down/resets or
 *       strata.vsock_idle_ms pass without data after an echo (then the guest shuts down);
 *   (b) connects to the host (CID 2) port 5678 from local port 49152, sends "ping-from-guest",
 *       prints the reply, shuts down. A refused connection (OP_RST) is retried every 500 ms, so
 *       the host may start listening late.
 * (a) and (b) run at the same time; the whole part is bounded by strata.vsock_ms.
 * Queues: 0 rx (16 device-writable 4 KiB buffers, header + payload in one descriptor, like
 * Linux), 1 tx (header descriptor, then payload descriptor), 2 event (4 buffers).
 * Credit: the guest advertises buf_alloc 65536 and its fwd_cnt on every packet; it only sends
 * data within the peer's buf_alloc - (tx_cnt - peer fwd_cnt) and asks with OP_CREDIT_REQUEST
 * when that is exhausted; it answers OP_CREDIT_REQUEST with OP_CREDIT_UPDATE. */
#include "virtio.h"

#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7
#define TYPE_STREAM 1
#define SHUTDOWN_BOTH 3
#define HOST_CID 2
#define LISTEN_PORT 1234
#define CONNECT_PORT 5678
#define CLIENT_PORT 49152
#define RXN 16
#define RXBUF 4096
#define HDR 44
#define CREDIT 65536
#define PEND 8192

struct pkt {
  u64 src_cid, dst_cid;
  u32 src_port, dst_port, len;
  u16 type, op;
  u32 flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct pkt) == HDR, "virtio_vsock_hdr is 44 bytes");

enum cstate { C_IDLE, C_LISTEN, C_CONNECTING, C_EST, C_CLOSING, C_DONE };
struct conn {
  const char *name;
  enum cstate st;
  u32 local_port, peer_port;
  u64 peer_cid;
  u32 peer_buf_alloc, peer_fwd_cnt, tx_cnt, fwd_cnt;
  int credit_asked, ok, refused, answered;
  struct deadline timer; /* idle / close / retry, depending on st */
  u32 npend;
  u8 pend[PEND];
};

static struct vdev *vd;
static struct vq rxq, txq, evq;
static u64 cid;
static struct pkt *txh;
static u8 *txd, *rxb[RXN], *evb;
static int tx_broken;
static struct conn L, C;

static void print_data(const u8 *p, u32 n) {
  putc_serial('"');
  print_text_bytes(p, n > 200 ? 200 : n);
  putc_serial('"');
}

static const char *op_name(u16 op) {
  static const char *names[] = {"INVALID", "REQUEST", "RESPONSE", "RST", "SHUTDOWN", "RW", "CREDIT_UPDATE", "CREDIT_REQUEST"};
  return op < 8 ? names[op] : "?";
}

static int tx_raw(u32 src_port, u64 dst_cid, u32 dst_port, u16 op, u32 flags, u32 fwd_cnt, const u8 *data, u32 len) {
  if (tx_broken) return 0;
  if (len > RXBUF) len = RXBUF;
  txh->src_cid = cid;
  txh->dst_cid = dst_cid;
  txh->src_port = src_port;
  txh->dst_port = dst_port;
  txh->len = len;
  txh->type = TYPE_STREAM;
  txh->op = op;
  txh->flags = flags;
  txh->buf_alloc = CREDIT;
  txh->fwd_cnt = fwd_cnt;
  txq.desc[0].addr = (usize)txh;
  txq.desc[0].len = HDR;
  txq.desc[0].flags = len ? VIRTQ_DESC_F_NEXT : 0;
  txq.desc[0].next = 1;
  if (len) {
    memcpy(txd, data, len);
    txq.desc[1].addr = (usize)txd;
    txq.desc[1].len = len;
    txq.desc[1].flags = 0;
  }
  vq_submit(vd, &txq, 0);
  if (!vq_wait(&txq, NULL, NULL, g_timeout_ms)) {
    tx_broken = 1;
    return 0;
  }
  return 1;
}

static int send(struct conn *c, u16 op, u32 flags, const u8 *data, u32 len) {
  int r = tx_raw(c->local_port, c->peer_cid, c->peer_port, op, flags, c->fwd_cnt, data, len);
  if (r && op == OP_RW) c->tx_cnt += len;
  return r;
}

/* Sends queued data as far as the peer's credit allows. */
static void flush(struct conn *c) {
  while (c->npend && c->st == C_EST && !tx_broken) {
    u32 in_flight = c->tx_cnt - c->peer_fwd_cnt;
    u32 room = c->peer_buf_alloc > in_flight ? c->peer_buf_alloc - in_flight : 0;
    if (!room) {
      if (!c->credit_asked) {
        printf("vsock: %s: peer credit exhausted, sending CREDIT_REQUEST\n", c->name);
        send(c, OP_CREDIT_REQUEST, 0, NULL, 0);
        c->credit_asked = 1;
      }
      return;
    }
    u32 n = c->npend;
    if (n > room) n = room;
    if (n > RXBUF) n = RXBUF;
    if (!send(c, OP_RW, 0, c->pend, n)) return;
    if (c == &L) {
      printf("vsock: echoed ");
      print_data(c->pend, n);
      printf(" (%u bytes) to cid %lu port %u\n", n, c->peer_cid, c->peer_port);
      c->ok = 1;
      deadline_set(&c->timer, g_vsock_idle_ms);
    } else {
      printf("vsock: sent ");
      print_data(c->pend, n);
      printf(" to cid %lu port %u\n", c->peer_cid, c->peer_port);
    }
    memcpy(c->pend, c->pend + n, c->npend - n);
    c->npend -= n;
  }
}

static void queue_data(struct conn *c, const u8 *p, u32 n) {
  if (n > PEND - c->npend) {
    printf("vsock: %s: %u bytes dropped (echo buffer full)\n", c->name, n - (PEND - c->npend));
    n = PEND - c->npend;
  }
  memcpy(c->pend + c->npend, p, n);
  c->npend += n;
}

static void connect_start(void) {
  C.st = C_CONNECTING;
  C.peer_cid = HOST_CID;
  C.peer_port = CONNECT_PORT;
  C.tx_cnt = C.fwd_cnt = C.peer_fwd_cnt = C.peer_buf_alloc = 0;
  send(&C, OP_REQUEST, 0, NULL, 0);
  deadline_set(&C.timer, g_timeout_ms);
}

static void close_conn(struct conn *c, const char *why) {
  printf("vsock: %s: %s, sending SHUTDOWN\n", c->name, why);
  send(c, OP_SHUTDOWN, SHUTDOWN_BOTH, NULL, 0);
  c->st = C_CLOSING;
  deadline_set(&c->timer, g_timeout_ms);
}

static void handle(struct pkt *h, u8 *data, u32 dlen) {
  static int dropped;
  if (h->dst_cid != cid && dropped++ < 4)
    printf("vsock: note: packet for cid %lu, ours is %lu (handled anyway)\n", h->dst_cid, cid);
  struct conn *c = NULL;
  if ((L.st == C_EST || L.st == C_CLOSING) && h->dst_port == L.local_port && h->src_port == L.peer_port &&
      h->src_cid == L.peer_cid)
    c = &L;
  else if (L.st == C_LISTEN && h->op == OP_REQUEST && h->dst_port == LISTEN_PORT)
    c = &L;
  else if ((C.st == C_CONNECTING || C.st == C_EST || C.st == C_CLOSING) && h->dst_port == C.local_port &&
           h->src_port == C.peer_port)
    c = &C;
  if (!c || h->type != TYPE_STREAM) {
    printf("vsock: %s from cid %lu port %u to port %u: %s\n", op_name(h->op), h->src_cid, h->src_port,
           h->dst_port, h->type != TYPE_STREAM ? "not a stream packet" : "no such socket");
    if (h->op != OP_RST) tx_raw(h->dst_port, h->src_cid, h->src_port, OP_RST, 0, 0, NULL, 0);
    return;
  }
  c->peer_buf_alloc = h->buf_alloc;
  c->peer_fwd_cnt = h->fwd_cnt;
  switch (h->op) {
    case OP_REQUEST:
      if (c->st != C_LISTEN) {
        send(c, OP_RST, 0, NULL, 0);
        break;
      }
      c->peer_cid = h->src_cid;
      c->peer_port = h->src_port;
      c->st = C_EST;
      c->answered = 1;
      send(c, OP_RESPONSE, 0, NULL, 0);
      printf("vsock: accepted connection from cid %lu port %u on port %u\n", c->peer_cid, c->peer_port, c->local_port);
      deadline_set(&c->timer, g_vsock_ms); /* idle timer starts with the first echo */
      break;
    case OP_RESPONSE:
      if (c != &C || c->st != C_CONNECTING) {
        send(c, OP_RST, 0, NULL, 0);
        c->st = C_DONE;
        break;
      }
      c->st = C_EST;
      c->answered = 1;
      printf("vsock: connected to cid %lu port %u from port %u\n", c->peer_cid, c->peer_port, c->local_port);
      queue_data(c, (const u8 *)"ping-from-guest", 15);
      flush(c);
      deadline_set(&c->timer, g_timeout_ms);
      break;
    case OP_RW:
      c->fwd_cnt += dlen;
      if (c->st != C_EST) break;
      if (c == &L) {
        printf("vsock: received ");
        print_data(data, dlen);
        printf(" (%u bytes) on port %u\n", dlen, c->local_port);
        queue_data(c, data, dlen);
        flush(c);
      } else {
        printf("vsock: reply from port %u: ", c->peer_port);
        print_data(data, dlen);
        printf(" (%u bytes)\n", dlen);
        c->ok = 1;
        close_conn(c, "got the reply");
      }
      break;
    case OP_CREDIT_UPDATE:
      c->credit_asked = 0;
      flush(c);
      break;
    case OP_CREDIT_REQUEST:
      send(c, OP_CREDIT_UPDATE, 0, NULL, 0);
      break;
    case OP_SHUTDOWN:
      printf("vsock: %s: peer shut down (flags %u), sending RST\n", c->name, h->flags);
      send(c, OP_RST, 0, NULL, 0);
      c->st = C_DONE;
      break;
    case OP_RST:
      if (c == &C && c->st == C_CONNECTING) {
        if (!c->refused++) printf("vsock: connection to cid 2 port %u refused (RST); retrying every 500 ms\n", CONNECT_PORT);
        c->st = C_IDLE;
        deadline_set(&c->timer, 500);
      } else {
        printf("vsock: %s: reset by peer\n", c->name);
        c->st = C_DONE;
      }
      break;
    default:
      printf("vsock: %s: unexpected op %u, sending RST\n", c->name, h->op);
      send(c, OP_RST, 0, NULL, 0);
      c->st = C_DONE;
  }
}

static const char *conn_state(struct conn *c) {
  if (c == &L) {
    if (!c->answered) return "no connection arrived";
    return c->ok ? "echoed" : "connected, no data echoed";
  }
  if (c->ok) return "got the reply";
  if (c->answered) return "connected, no reply";
  return c->refused ? "refused (nothing listening?)" : "no answer";
}

enum result vsock_run(struct vdev *d) {
  vd = d;
  tx_broken = 0;
  const char *err = virtio_begin(d, 0);
  if (!err) err = virtio_queue(d, &rxq, 0, RXN);
  if (!err) err = virtio_queue(d, &txq, 1, 8);
  if (!err) err = virtio_queue(d, &evq, 2, 4);
  if (err) {
    printf("vsock: FAIL %s\n", err);
    return R_FAIL;
  }
  cid = vcfg64(d, 0);
  txh = dma_alloc(HDR);
  txd = dma_alloc(RXBUF);
  evb = dma_alloc(4096);
  for (int i = 0; i < RXN; i++) rxb[i] = dma_alloc(RXBUF);
  virtio_driver_ok(d);
  printf("vsock: guest cid %lu, rx queue %u, tx queue %u, event queue %u\n", cid, rxq.num, txq.num, evq.num);
  for (u16 i = 0; i < rxq.num; i++) {
    rxq.desc[i].addr = (usize)rxb[i];
    rxq.desc[i].len = RXBUF;
    rxq.desc[i].flags = VIRTQ_DESC_F_WRITE;
    rxq.avail->ring[i] = i;
  }
  for (u16 i = 0; i < evq.num; i++) {
    evq.desc[i].addr = (usize)(evb + 8 * i);
    evq.desc[i].len = 8;
    evq.desc[i].flags = VIRTQ_DESC_F_WRITE;
    evq.avail->ring[i] = i;
  }
  barrier();
  rxq.avail->idx = rxq.avail_idx = rxq.num;
  evq.avail->idx = evq.avail_idx = evq.num;
  barrier();
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, 2);

  memset(&L, 0, sizeof L);
  memset(&C, 0, sizeof C);
  L.name = "port 1234";
  L.st = C_LISTEN;
  L.local_port = LISTEN_PORT;
  C.name = "port 5678";
  C.local_port = CLIENT_PORT;
  printf("vsock: listening on port %u; connecting to cid 2 port %u\n", LISTEN_PORT, CONNECT_PORT);
  connect_start();

  struct deadline total;
  deadline_set(&total, g_vsock_ms);
  while (!(L.st == C_DONE && C.st == C_DONE) && !tx_broken && !deadline_passed(&total)) {
    u32 id, len;
    if (vq_poll(&rxq, &id, &len)) {
      if (id < rxq.num && len >= HDR && len <= RXBUF) {
        struct pkt *h = (struct pkt *)rxb[id];
        u32 dlen = h->len <= len - HDR ? h->len : len - HDR;
        handle(h, rxb[id] + HDR, h->op == OP_RW ? dlen : 0);
      } else {
        printf("vsock: bad RX used element id %u len %u\n", id, len);
      }
      if (id < rxq.num) vq_submit(d, &rxq, (u16)id);
    }
    if (vq_poll(&evq, &id, &len)) {
      u32 ev = id < evq.num ? *(volatile u32 *)(evb + 8 * id) : 0xffffffff;
      printf("vsock: event %u%s\n", ev, ev == 0 ? " (TRANSPORT_RESET)" : "");
      if (ev == 0) {
        cid = vcfg64(d, 0);
        if (L.st != C_DONE) L.st = C_LISTEN;
        if (C.st != C_DONE) C.st = C_IDLE;
      }
      if (id < evq.num) vq_submit(d, &evq, (u16)id);
    }
    /* timers */
    if (C.st == C_IDLE && deadline_passed(&C.timer)) connect_start();
    if (C.st == C_CONNECTING && deadline_passed(&C.timer)) {
      C.st = C_IDLE; /* no answer to the request: try again */
      deadline_set(&C.timer, 0);
    }
    if (C.st == C_EST && deadline_passed(&C.timer)) close_conn(&C, "no reply in time");
    if (L.st == C_EST && L.ok && !L.npend && deadline_passed(&L.timer)) close_conn(&L, "no more data");
    if (L.st == C_CLOSING && deadline_passed(&L.timer)) L.st = C_DONE;
    if (C.st == C_CLOSING && deadline_passed(&C.timer)) C.st = C_DONE;
  }
  if (L.st == C_EST || L.st == C_CLOSING) send(&L, OP_RST, 0, NULL, 0);
  if (C.st == C_EST || C.st == C_CLOSING || C.st == C_CONNECTING) send(&C, OP_RST, 0, NULL, 0);
  if (tx_broken) {
    printf("vsock: timeout (TX queue not consumed in %lu ms)\n", g_timeout_ms);
    return R_TIMEOUT;
  }
  if (L.ok && C.ok) {
    printf("vsock: OK\n");
    return R_OK;
  }
  printf("vsock: timeout (port 1234: %s; port 5678: %s; after %lu ms)\n", conn_state(&L), conn_state(&C), g_vsock_ms);
  return R_TIMEOUT;
}
