/*
 * bootfarm-nbd: the node's root NBD client, which outlives a bootfarm restart.
 *
 *   bootfarm-nbd HOST PORT EXPORT /dev/nbdN
 *
 * The kernel's nbd device is given one end of a socketpair; this process holds
 * the other end and the TCP connection to bootfarm, and forwards requests and
 * replies between them. When the TCP connection dies (server restarted, crashed,
 * container stopped) it reconnects, with backoff and without limit, and sends
 * again every request that has no reply yet: the root is read-only and reads are
 * idempotent. The kernel never sees its socket die, so I/O blocks while bootfarm
 * is away and resumes when it is back; nothing reaches squashfs as an error.
 * (The kernel's request timer is left unset: with timeout 0 it only warns about
 * a stuck request and re-arms, see docs/design.md "Root reconnect".)
 *
 * After the handshake the process forks: the child sets the device up and stays,
 * the parent exits 0 once it has. It marks itself like nbd-client -systemd-mark
 * (argv[0][0] = '@': systemd leaves it alone at switch-root and shutdown), locks
 * its memory (the root cannot be paged back in through itself) and opts out of
 * the OOM killer. Messages go to the kernel log (/dev/kmsg).
 *
 * Every byte from the server is checked: magics, handles, lengths.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nbd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OPTS_MAGIC 0x49484156454F5054ULL /* IHAVEOPT */
#define OPT_REPLY_MAGIC 0x0003e889045565a9ULL
#define NBD_OPT_GO 7
#define NBD_REP_ACK 1
#define NBD_REP_INFO 3
#define NBD_INFO_EXPORT 0
#define FLAG_FIXED_NEWSTYLE 1
#define FLAG_NO_ZEROES 2
#define REQ_MAGIC 0x25609513U
#define REPLY_MAGIC 0x67446698U
#define CMD_READ 0
#define CMD_WRITE 1
#define CMD_DISC 2
#define ERR_EIO 5
#define ERR_ESHUTDOWN 108
#define MAX_PAYLOAD (32U * 1024 * 1024)
/* A request whose reply is this late is taken as a dead connection. */
#define STALL_SECONDS 60
/* A server answering EIO/ESHUTDOWN (e.g. while it shuts down) gets this many tries per request. */
#define MAX_TRIES 8

static const char *host, *port, *export_name;
static int kmsg = -1;
static uint64_t export_size;

static void say(const char *fmt, ...) {
	char buf[512];
	int n = snprintf(buf, sizeof buf, "<5>bootfarm-nbd: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof buf) n = sizeof buf - 1;
	if (kmsg >= 0 && write(kmsg, buf, (size_t)n) >= 0) return;
	fprintf(stderr, "%s\n", buf + 3);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t be64(const unsigned char *p) {
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
	return v;
}
static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

/* 0 on success, -1 on error or end of stream. */
static int read_full(int fd, void *buf, size_t len) {
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len) {
	const unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads and drops len bytes. */
static int skip(int fd, uint32_t len) {
	unsigned char buf[512];
	while (len > 0) {
		uint32_t n = len < sizeof buf ? len : (uint32_t)sizeof buf;
		if (read_full(fd, buf, n) < 0) return -1;
		len -= n;
	}
	return 0;
}

/*
 * A TCP connection with timeouts: connect and every blocking send/receive give
 * up after 30 s, unacknowledged data after 30 s (TCP_USER_TIMEOUT), and an idle
 * connection to a vanished peer is found by keepalives within ~25 s.
 */
static int dial(void) {
	/* Numeric addresses only (the kernel command line carries one): no resolver in the initramfs. */
	struct sockaddr_storage ss = {0};
	socklen_t sslen;
	char addr[64];
	snprintf(addr, sizeof addr, "%s", host[0] == '[' ? host + 1 : host);
	char *close_bracket = strchr(addr, ']');
	if (close_bracket) *close_bracket = 0;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	uint16_t portnum = (uint16_t)atoi(port);
	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(portnum);
		sslen = sizeof *v4;
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(portnum);
		sslen = sizeof *v6;
	} else {
		errno = EINVAL;
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return -1;
	struct timeval tv = {.tv_sec = 30};
	int one = 1, idle = 10, intvl = 5, cnt = 3;
	unsigned int user_timeout = 30000;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * Fixed-newstyle handshake with NBD_OPT_GO. Returns the connected socket, or -1
 * with *why set. The size and transmission flags go to *size and *flags.
 */
static int handshake(uint64_t *size, uint16_t *flags, const char **why) {
	int fd = dial();
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	unsigned char hello[18];
	if (read_full(fd, hello, sizeof hello) < 0) { *why = "no greeting"; goto fail; }
	if (memcmp(hello, "NBDMAGIC", 8) != 0 || be64(hello + 8) != OPTS_MAGIC) { *why = "not a newstyle NBD server"; goto fail; }
	uint16_t sflags = (uint16_t)(hello[16] << 8 | hello[17]);
	if (!(sflags & FLAG_FIXED_NEWSTYLE)) { *why = "server is not fixed-newstyle"; goto fail; }
	unsigned char cflags[4] = {0};
	put32(cflags, FLAG_FIXED_NEWSTYLE | (sflags & FLAG_NO_ZEROES));
	size_t nlen = strlen(export_name);
	size_t olen = 16 + 4 + nlen + 2;
	unsigned char *opt = calloc(1, 4 + olen);
	if (!opt) { *why = "out of memory"; goto fail; }
	memcpy(opt, cflags, 4);
	memcpy(opt + 4, "IHAVEOPT", 8);
	put32(opt + 12, NBD_OPT_GO);
	put32(opt + 16, (uint32_t)(4 + nlen + 2));
	put32(opt + 20, (uint32_t)nlen);
	memcpy(opt + 24, export_name, nlen);
	/* opt + 24 + nlen: zero information requests (already 0). */
	int sent = write_full(fd, opt, 4 + olen);
	free(opt);
	if (sent < 0) { *why = "sending the export name failed"; goto fail; }
	int have_export = 0;
	for (int replies = 0; replies < 64; replies++) {
		unsigned char rh[20];
		if (read_full(fd, rh, sizeof rh) < 0) { *why = "no option reply"; goto fail; }
		uint32_t type = be32(rh + 12), len = be32(rh + 16);
		if (be64(rh) != OPT_REPLY_MAGIC || be32(rh + 8) != NBD_OPT_GO || len > 65536) { *why = "malformed option reply"; goto fail; }
		if (type & 0x80000000U) {
			static char msg[160];
			char text[100] = "";
			uint32_t keep = len < sizeof text - 1 ? len : (uint32_t)sizeof text - 1;
			if (read_full(fd, text, keep) < 0 || skip(fd, len - keep) < 0) { *why = "truncated error reply"; goto fail; }
			for (uint32_t i = 0; i < keep; i++) if (text[i] < 32 || text[i] > 126) text[i] = '?';
			snprintf(msg, sizeof msg, "refused (0x%x): %s", type, text);
			*why = msg;
			goto fail;
		}
		if (type == NBD_REP_ACK) {
			if (len != 0 || !have_export) { *why = "GO acknowledged without export information"; goto fail; }
			return fd;
		}
		if (type == NBD_REP_INFO && len >= 2) {
			unsigned char info[12];
			if (read_full(fd, info, 2) < 0) { *why = "truncated info"; goto fail; }
			if ((info[0] << 8 | info[1]) == NBD_INFO_EXPORT && len == 12) {
				if (read_full(fd, info + 2, 10) < 0) { *why = "truncated info"; goto fail; }
				*size = be64(info + 2);
				*flags = (uint16_t)(info[10] << 8 | info[11]);
				have_export = 1;
				continue;
			}
			if (skip(fd, len - 2) < 0) { *why = "truncated info"; goto fail; }
			continue;
		}
		if (skip(fd, len) < 0) { *why = "truncated option reply"; goto fail; }
	}
	*why = "too many option replies";
fail:
	close(fd);
	return -1;
}

/* A request the kernel sent and that has no reply yet. */
struct pending {
	unsigned char head[28];
	unsigned char *payload; /* writes only */
	uint32_t type, len;
	int tries;
	struct pending *next;
};
static struct pending *pending;

static int send_request(int srv, struct pending *p) {
	if (write_full(srv, p->head, sizeof p->head) < 0) return -1;
	if (p->payload && write_full(srv, p->payload, p->len) < 0) return -1;
	return 0;
}

/* Until the server is back with the same export: blocks, retrying forever. */
static int reconnect(const char *reason) {
	double down = now(), last_said = 0, delay = 0.2;
	int attempts = 0;
	say("connection to %s:%s lost (%s); reconnecting, I/O waits", host, port, reason);
	for (;;) {
		uint64_t size = 0;
		uint16_t flags = 0;
		const char *why = "";
		attempts++;
		int fd = handshake(&size, &flags, &why);
		if (fd >= 0 && size != export_size) {
			/* Other bytes under the same name: never mix them into a mounted root. */
			close(fd);
			fd = -1;
			why = "the export changed size";
		}
		if (fd >= 0) {
			int resent = 0;
			struct pending *p = pending;
			for (; p; p = p->next, resent++) {
				if (send_request(fd, p) < 0) break;
			}
			if (!p) {
				say("reconnected to %s:%s after %.1f s (%d attempts), %d request(s) sent again", host, port, now() - down, attempts, resent);
				return fd;
			}
			close(fd);
			why = "sending the pending requests failed";
		}
		if (now() - last_said >= 30) {
			say("%s:%s %s: still trying (%.0f s)", host, port, why, now() - down);
			last_said = now();
		}
		/* Backoff with jitter, so a fleet does not come back in lockstep. */
		double wait = delay * (0.75 + (double)(rand() % 500) / 1000.0);
		struct timespec ts = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
		nanosleep(&ts, NULL);
		delay = delay * 2 > 3 ? 3 : delay * 2;
	}
}

static int nbd_fd = -1;

static void *do_it(void *arg) {
	(void)arg;
	/* Returns when the device is disconnected (nbd-client -d) or its socket closes. */
	int r = ioctl(nbd_fd, NBD_DO_IT);
	say("device released (%s); exiting", r < 0 ? strerror(errno) : "disconnected");
	ioctl(nbd_fd, NBD_CLEAR_QUE);
	ioctl(nbd_fd, NBD_CLEAR_SOCK);
	exit(0);
	return NULL;
}

/* Forwards one request from the kernel. Returns -1 when the kernel side is gone. */
static int from_kernel(int ksock, int *srv) {
	struct pending *p = calloc(1, sizeof *p);
	if (!p || read_full(ksock, p->head, sizeof p->head) < 0) return -1;
	if (be32(p->head) != REQ_MAGIC) {
		say("bad request magic from the kernel");
		return -1;
	}
	p->type = be32(p->head + 4) & 0xffff;
	p->len = be32(p->head + 24);
	if (p->type == CMD_WRITE) {
		if (p->len > MAX_PAYLOAD || !(p->payload = malloc(p->len ? p->len : 1)) || read_full(ksock, p->payload, p->len) < 0) return -1;
	}
	if (p->type == CMD_DISC) {
		if (*srv >= 0) write_full(*srv, p->head, sizeof p->head);
		free(p);
		return -1;
	}
	/* Appended at the tail: requests are sent again in their original order. */
	struct pending **tail = &pending;
	while (*tail) tail = &(*tail)->next;
	*tail = p;
	if (*srv >= 0 && send_request(*srv, p) < 0) {
		close(*srv);
		*srv = -1;
	}
	return 0;
}

/*
 * Reads one reply from the server and hands it to the kernel. Returns 1 when
 * the connection must be dropped, -1 when the kernel side is gone, 0 otherwise.
 */
static int from_server(int srv, int ksock) {
	unsigned char rh[16];
	if (read_full(srv, rh, sizeof rh) < 0) return 1;
	if (be32(rh) != REPLY_MAGIC) {
		say("bad reply magic from the server");
		return 1;
	}
	struct pending **pp = &pending;
	while (*pp && memcmp((*pp)->head + 8, rh + 8, 8) != 0) pp = &(*pp)->next;
	if (!*pp) {
		say("reply for a handle that is not pending");
		return 1;
	}
	struct pending *p = *pp;
	uint32_t error = be32(rh + 4);
	unsigned char *data = NULL;
	if (p->type == CMD_READ && error == 0) {
		if (p->len > MAX_PAYLOAD || !(data = malloc(p->len ? p->len : 1))) return 1;
		if (read_full(srv, data, p->len) < 0) {
			free(data);
			return 1;
		}
	}
	if ((error == ERR_EIO || error == ERR_ESHUTDOWN) && ++p->tries < MAX_TRIES) {
		/* The server could not answer now (shutting down, file closed): ask again on a new connection. */
		say("server answered error %u; asking again on a new connection", error);
		return 1;
	}
	*pp = p->next;
	int r = write_full(ksock, rh, sizeof rh) < 0 || (data && write_full(ksock, data, p->len) < 0) ? -1 : 0;
	free(data);
	free(p->payload);
	free(p);
	return r;
}

static void run(int srv, int ksock) {
	double last_progress = now();
	for (;;) {
		if (srv < 0) {
			srv = reconnect("connection closed");
			last_progress = now();
		}
		struct pollfd fds[2] = {{.fd = ksock, .events = POLLIN}, {.fd = srv, .events = POLLIN}};
		int n = poll(fds, 2, 5000);
		if (n < 0 && errno != EINTR) {
			say("poll: %s", strerror(errno));
			exit(1);
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (from_kernel(ksock, &srv) < 0) {
				say("the kernel closed its end; exiting");
				exit(0);
			}
		}
		if (srv >= 0 && fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			int r = from_server(srv, ksock);
			if (r < 0) {
				say("the kernel closed its end; exiting");
				exit(0);
			}
			if (r > 0) {
				close(srv);
				srv = -1;
				continue;
			}
			last_progress = now();
		}
		if (srv >= 0 && pending && now() - last_progress > STALL_SECONDS) {
			say("no reply for %d s", STALL_SECONDS);
			close(srv);
			srv = -1;
		}
		if (!pending) last_progress = now();
	}
}

/* What keeps the root's client alive: systemd's mark, locked memory, no OOM kill. */
static void protect(char *argv0) {
	argv0[0] = '@';
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "-1000", 5) < 0) say("cannot opt out of the OOM killer: %s", strerror(errno));
		close(fd);
	}
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0) say("mlockall: %s", strerror(errno));
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: %s HOST PORT EXPORT /dev/nbdN\n", argv[0]);
		return 2;
	}
	host = argv[1];
	port = argv[2];
	export_name = argv[3];
	const char *device = argv[4];
	kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));

	uint16_t flags = 0;
	const char *why = "";
	int srv = handshake(&export_size, &flags, &why);
	if (srv < 0) {
		fprintf(stderr, "bootfarm-nbd: %s:%s export %s: %s\n", host, port, export_name, why);
		return 1;
	}
	int ready[2];
	if (pipe(ready) < 0) return 1;
	pid_t child = fork();
	if (child < 0) {
		perror("bootfarm-nbd: fork");
		return 1;
	}
	if (child > 0) {
		/* The parent returns once the child has set the device up (its errors went to stderr). */
		char c;
		close(ready[1]);
		return read(ready[0], &c, 1) == 1 ? 0 : 1;
	}
	close(ready[0]);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("bootfarm-nbd: socketpair");
		return 1;
	}
	nbd_fd = open(device, O_RDWR | O_CLOEXEC);
	if (nbd_fd < 0) {
		fprintf(stderr, "bootfarm-nbd: %s: %s\n", device, strerror(errno));
		return 1;
	}
	/* Timeout left at 0: the kernel never fails a request for lateness. */
	if (ioctl(nbd_fd, NBD_CLEAR_SOCK) < 0 || ioctl(nbd_fd, NBD_SET_BLKSIZE, 512UL) < 0 ||
	    ioctl(nbd_fd, NBD_SET_SIZE, (unsigned long)export_size) < 0 ||
	    ioctl(nbd_fd, NBD_SET_FLAGS, (unsigned long)flags) < 0 || ioctl(nbd_fd, NBD_SET_SOCK, (unsigned long)sv[0]) < 0) {
		fprintf(stderr, "bootfarm-nbd: setting up %s: %s\n", device, strerror(errno));
		return 1;
	}
	setsid();
	protect(argv[0]);
	pthread_t t;
	if (pthread_create(&t, NULL, do_it, NULL) != 0) {
		fprintf(stderr, "bootfarm-nbd: cannot start the device thread\n");
		return 1;
	}
	say("%s from %s:%s on %s (%llu bytes); reconnects while the server is away", export_name, host, port, device, (unsigned long long)export_size);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (write(ready[1], "1", 1) != 1) return 1;
	close(ready[1]);
	run(srv, sv[1]);
	return 0;
}
