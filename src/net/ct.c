/*
 * ct.c - conntrack flushes through raw ctnetlink messages (see ct.h).
 *
 * Raw nfnetlink keeps the dependency list at libnl + libnftables: the three
 * messages we need (flush, filtered dump, delete by tuple) are a header and
 * a few attributes. The host-side delete is a filtered dump (CTA_FILTER,
 * kernel >= 5.8) followed by one delete per entry, because the kernel's
 * flush-with-filter path does not take tuples.
 */
#include "net/ct.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>

/* Entries deleted per dump pass: bounds the memory of one pass (each saved
 * tuple is at most CT_TUPLE_MAX bytes); more entries take more passes. */
#define CT_BATCH 512
#define CT_TUPLE_MAX 160
/* Passes per call: a guest opening connections faster than we delete them
 * cannot keep the scrub running forever. */
#define CT_PASSES_MAX 16
#define CT_RECV_BUF 32768
#define CT_RECV_TIMEOUT_S 5
/* CTA_FILTER_ORIG_FLAGS bits; the kernel defines them privately
 * (nf_conntrack_netlink.c: CTA_FILTER_F_CTA_IP_SRC/DST). */
#define CT_FILTER_IP_SRC (1u << 0)
#define CT_FILTER_IP_DST (1u << 1)

struct ct_msg {
        struct nlmsghdr hdr;
        struct nfgenmsg nfg;
        char            attrs[256];
};

static int ct_open(void)
{
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        /* The kernel always answers; the timeout only bounds a wait that
         * would otherwise be forever if it did not. */
        struct timeval tv = { .tv_sec = CT_RECV_TIMEOUT_S };
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);

        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static void msg_init(struct ct_msg *m, uint16_t type, uint16_t flags, uint32_t seq)
{
        memset(m, 0, sizeof *m);
        m->hdr.nlmsg_len = NLMSG_LENGTH(sizeof m->nfg);
        m->hdr.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
        m->hdr.nlmsg_flags = NLM_F_REQUEST | flags;
        m->hdr.nlmsg_seq = seq;
        m->nfg.nfgen_family = AF_INET;
        m->nfg.version = NFNETLINK_V0;
}

/* Appends an attribute; returns its offset in |m| for nesting, or -1. */
static int attr_put(struct ct_msg *m, uint16_t type, const void *data, size_t len)
{
        size_t off = NLMSG_ALIGN(m->hdr.nlmsg_len);
        struct nlattr *a = (struct nlattr *)((char *)m + off);

        if (off + NLA_HDRLEN + NLA_ALIGN(len) > sizeof *m)
                return -1;
        a->nla_type = type;
        a->nla_len = (uint16_t)(NLA_HDRLEN + len);
        if (len)
                memcpy((char *)a + NLA_HDRLEN, data, len);
        m->hdr.nlmsg_len = (uint32_t)(off + NLA_HDRLEN + NLA_ALIGN(len));
        return (int)off;
}

static void attr_end(struct ct_msg *m, int off)
{
        struct nlattr *a = (struct nlattr *)((char *)m + off);
        a->nla_len = (uint16_t)(m->hdr.nlmsg_len - (uint32_t)off);
}

/* Waits for the ACK of request |seq|; returns its error (0 or -errno). */
static int ack_wait(int fd, uint32_t seq)
{
        char buf[4096];

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
                     h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
                                continue;
                        return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                }
        }
}

static int send_wait(int fd, struct ct_msg *m)
{
        if (send(fd, m, m->hdr.nlmsg_len, 0) < 0)
                return -errno;
        return ack_wait(fd, m->hdr.nlmsg_seq);
}

/* The namespace's own entry count (O(1), per namespace), or -1 if unknown. */
static long ct_count_here(void)
{
        char buf[32];
        ssize_t n;
        int fd = open("/proc/sys/net/netfilter/nf_conntrack_count", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -1;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        return strtol(buf, NULL, 10);
}

int net_ct_flush_all(void)
{
        struct ct_msg m;
        int fd, r;

        /* A flush walks the kernel's global conntrack hash (all namespaces);
         * skip it when this namespace has no entries at all. */
        if (ct_count_here() == 0)
                return 0;
        fd = ct_open();
        if (fd < 0)
                return fd;
        msg_init(&m, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, 1);
        r = send_wait(fd, &m);
        close(fd);
        /* ENOENT: conntrack never started in this namespace; nothing to do. */
        return r == -ENOENT ? 0 : r;
}

struct ct_batch {
        size_t n;
        bool   more;            /* the dump had entries past CT_BATCH */
        size_t len[CT_BATCH];
        char   tuple[CT_BATCH][CT_TUPLE_MAX];
};

/* Finds attribute |type| among the attributes in [p, p + len). */
static const struct nlattr *attr_find(const char *p, size_t len, uint16_t type)
{
        size_t off = 0;

        while (off + NLA_HDRLEN <= len) {
                const struct nlattr *a = (const struct nlattr *)(p + off);
                if (a->nla_len < NLA_HDRLEN || off + a->nla_len > len)
                        return NULL;
                if ((a->nla_type & NLA_TYPE_MASK) == type)
                        return a;
                off += NLA_ALIGN(a->nla_len);
        }
        return NULL;
}

/* True when the CTA_TUPLE_ORIG |t| has |ip| as its source (or destination).
 * Checked here although the kernel filtered the dump: a kernel without
 * CTA_FILTER (< 5.8) ignores the filter and dumps everything, and we must
 * never delete other people's connections. */
static bool tuple_matches(const struct nlattr *t, uint32_t ip, bool dst)
{
        const struct nlattr *tip, *a;
        uint32_t be;

        tip = attr_find((const char *)t + NLA_HDRLEN, t->nla_len - NLA_HDRLEN, CTA_TUPLE_IP);
        if (!tip)
                return false;
        a = attr_find((const char *)tip + NLA_HDRLEN, tip->nla_len - NLA_HDRLEN,
                      dst ? CTA_IP_V4_DST : CTA_IP_V4_SRC);
        if (!a || a->nla_len != NLA_HDRLEN + sizeof be)
                return false;
        memcpy(&be, (const char *)a + NLA_HDRLEN, sizeof be);
        return ntohl(be) == ip;
}

/* Saves the CTA_TUPLE_ORIG attribute (header included) of one dump entry
 * when it matches. */
static void batch_add(struct ct_batch *b, const struct nlmsghdr *h, uint32_t ip, bool dst)
{
        size_t off = NLMSG_LENGTH(sizeof(struct nfgenmsg));
        const struct nlattr *a;

        if (h->nlmsg_len <= off)
                return;
        a = attr_find((const char *)h + off, h->nlmsg_len - off, CTA_TUPLE_ORIG);
        if (!a || a->nla_len > CT_TUPLE_MAX || !tuple_matches(a, ip, dst))
                return;
        if (b->n == CT_BATCH) {
                b->more = true;
                return;
        }
        memcpy(b->tuple[b->n], a, a->nla_len);
        b->len[b->n++] = a->nla_len;
}

/* Dumps the entries with orig src (or dst) == ip into |b|. */
static int dump_filtered(int fd, uint32_t ip, bool dst, uint32_t seq, struct ct_batch *b)
{
        struct ct_msg m;
        uint32_t be = htonl(ip), flags = dst ? CT_FILTER_IP_DST
                                              : CT_FILTER_IP_SRC, zero = 0;
        char *buf;
        int t, i, f, r = 0;
        bool done = false;

        msg_init(&m, IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq);
        t = attr_put(&m, CTA_TUPLE_ORIG | NLA_F_NESTED, NULL, 0);
        i = attr_put(&m, CTA_TUPLE_IP | NLA_F_NESTED, NULL, 0);
        attr_put(&m, dst ? CTA_IP_V4_DST : CTA_IP_V4_SRC, &be, sizeof be);
        attr_end(&m, i);
        attr_end(&m, t);
        f = attr_put(&m, CTA_FILTER | NLA_F_NESTED, NULL, 0);
        attr_put(&m, CTA_FILTER_ORIG_FLAGS, &flags, sizeof flags);
        attr_put(&m, CTA_FILTER_REPLY_FLAGS, &zero, sizeof zero);
        attr_end(&m, f);
        if (send(fd, &m, m.hdr.nlmsg_len, 0) < 0)
                return -errno;

        buf = malloc(CT_RECV_BUF);
        if (!buf)
                return -ENOMEM;
        b->n = 0;
        b->more = false;
        while (!done) {
                ssize_t n = recv(fd, buf, CT_RECV_BUF, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
                     h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_seq != seq)
                                continue;
                        if (h->nlmsg_type == NLMSG_DONE) {
                                done = true;
                                break;
                        }
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                r = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                                done = true;
                                break;
                        }
                        batch_add(b, h, ip, dst);
                }
        }
        free(buf);
        return r;
}

static int delete_batch(int fd, const struct ct_batch *b, uint32_t *seq)
{
        struct ct_msg m;
        int deleted = 0, r;

        for (size_t k = 0; k < b->n; k++) {
                msg_init(&m, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, ++*seq);
                if (attr_put(&m, CTA_TUPLE_ORIG, b->tuple[k] + NLA_HDRLEN,
                             b->len[k] - NLA_HDRLEN) < 0)
                        continue;
                r = send_wait(fd, &m);
                if (r == 0)
                        deleted++;
                else if (r != -ENOENT)  /* gone meanwhile is fine */
                        return r;
        }
        return deleted;
}

static int flush_or_count(uint32_t ip, bool count_only)
{
        struct ct_batch *b;
        uint32_t seq = 1;
        int fd, r = 0, total = 0;

        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        fd = ct_open();
        if (fd < 0) {
                free(b);
                return fd;
        }
        for (int dir = 0; dir < 2 && r >= 0; dir++) {
                for (int pass = 0; pass < CT_PASSES_MAX; pass++) {
                        r = dump_filtered(fd, ip, dir == 1, ++seq, b);
                        if (r == -ENOENT) {     /* no conntrack in this namespace */
                                r = 0;
                                break;
                        }
                        if (r < 0)
                                break;
                        if (count_only) {
                                total += (int)b->n;
                                break;
                        }
                        r = delete_batch(fd, b, &seq);
                        if (r < 0)
                                break;
                        total += r;
                        if (!b->more)
                                break;
                }
        }
        close(fd);
        free(b);
        return r < 0 ? r : total;
}

int net_ct_flush_ip(uint32_t ip)
{
        return flush_or_count(ip, false);
}

int net_ct_count_ip(uint32_t ip)
{
        return flush_or_count(ip, true);
}
