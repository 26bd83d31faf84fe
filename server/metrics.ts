// Prometheus metrics. One registry per running service, so tests can start
// several services in one process without label clashes.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly dhcpPackets = new Counter({
    name: 'bootfarm_dhcp_packets_total',
    help: 'DHCP requests handled, by message type, listener and outcome',
    labelNames: ['type', 'listener', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly dhcpMalformed = new Counter({
    name: 'bootfarm_dhcp_malformed_total',
    help: 'Datagrams dropped because they could not be decoded, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly dhcpHandlerErrors = new Counter({
    name: 'bootfarm_dhcp_handler_errors_total',
    help: 'Requests whose handling failed (e.g. the lease could not be persisted)',
    registers: [this.registry],
  });
  readonly dhcpRateLimited = new Counter({
    name: 'bootfarm_dhcp_rate_limited_total',
    help: 'DHCP requests from machines in no inventory dropped by a rate limit (scope: client = one MAC over its budget, global = all unknown machines over theirs)',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });
  readonly dhcpUnknownLeaseCap = new Counter({
    name: 'bootfarm_dhcp_unknown_lease_cap_total',
    help: 'Offers not made because machines in no inventory already hold dhcp.limits.unknownLeasePercent of the pool',
    registers: [this.registry],
  });
  readonly dhcpClockSkewSilent = new Counter({
    name: 'bootfarm_dhcp_clock_skew_silent_total',
    help: 'store.backend etcd: DHCP requests for a dynamic address left unanswered (no OFFER, ACK or NAK) because clock skew stops this instance',
    registers: [this.registry],
  });
  readonly dhcpDeclinesIgnored = new Counter({
    name: 'bootfarm_dhcp_declines_ignored_total',
    help: 'DHCPDECLINEs not acted on, by reason (not-offered: the client held no offer or lease for the address; quarantine-full: dhcp.limits.maxQuarantinedPercent of the pool is quarantined already)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly dhcpObservedAddressRefused = new Counter({
    name: 'bootfarm_dhcp_observed_address_refused_total',
    help: 'Proxy mode: addresses a REQUEST asserted for a node (option 50 or ciaddr) that were not recorded, by reason (off-subnet, source-mismatch, no-served-network)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly dhcpIdentityMismatch = new Counter({
    name: 'bootfarm_dhcp_identity_mismatch_total',
    help: "DHCP requests naming an inventory Pi's serial (option 97) from another MAC: treated as unknown machines",
    registers: [this.registry],
  });
  readonly dhcpRepliesUnsendable = new Counter({
    name: 'bootfarm_dhcp_replies_unsendable_total',
    help: 'DHCP replies not sent because their destination cannot be sent to (port 0, a bad address) or the socket refused them',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly unhandledErrors = new Counter({
    name: 'bootfarm_unhandled_errors_total',
    help: 'Errors that reached the process level (kind: rejection, logged and survived; exception, logged before exiting)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly tftpRequests = new Counter({
    name: 'bootfarm_tftp_requests_total',
    help: 'TFTP requests by outcome (started, not-found, denied, busy: tftp.maxTransfers in flight, busy-client: tftp.maxTransfersPerClient in flight from that address, write-refused, bad-mode, stopping: refused while a graceful stop drains)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly tftpTransfers = new Counter({
    name: 'bootfarm_tftp_transfers_total',
    help: 'TFTP transfers ended, by outcome (complete, aborted-by-client, timeout, error)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly tftpBytes = new Counter({
    name: 'bootfarm_tftp_bytes_total',
    help: 'Bytes acknowledged by TFTP clients',
    registers: [this.registry],
  });
  readonly tftpMalformed = new Counter({
    name: 'bootfarm_tftp_malformed_total',
    help: 'Datagrams on the TFTP request port that could not be parsed or were not requests',
    registers: [this.registry],
  });
  readonly tftpTransfersInFlight = new Gauge({
    name: 'bootfarm_tftp_transfers_in_flight',
    help: 'TFTP transfer slots held now: transfers running plus requests being resolved (at most tftp.maxTransfers)',
    registers: [this.registry],
  });
  readonly tftpDropped = new Counter({
    name: 'bootfarm_tftp_dropped_total',
    help: 'TFTP datagrams dropped without any reply, by reason (source-port-0: nothing can be sent to port 0; unknown-peer: tftp.singlePort, no transfer for that client address and port)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly tftpSendErrors = new Counter({
    name: 'bootfarm_tftp_send_errors_total',
    help: 'TFTP sends refused by Node or the kernel, by destination (client: a transfer peer, which ends that transfer; stranger: an ERROR 5 to another endpoint; refusal: an ERROR to a request)',
    labelNames: ['to'] as const,
    registers: [this.registry],
  });
  readonly tftpOptionsIgnored = new Counter({
    name: 'bootfarm_tftp_options_ignored_total',
    help: 'TFTP options left out of the OACK because the value was invalid or above a limit (timeout above tftp.maxTimeoutSeconds), by option',
    labelNames: ['option'] as const,
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'bootfarm_http_requests_total',
    help: 'HTTP boot-file requests by outcome (200, 206, not-found, denied, range-unsatisfiable)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly httpBytes = new Counter({
    name: 'bootfarm_http_bytes_total',
    help: 'Bytes of boot files sent over HTTP',
    registers: [this.registry],
  });
  readonly httpConnectionsOpen = new Gauge({
    name: 'bootfarm_http_connections_open',
    help: 'HTTP connections open now (at most http.maxConnections)',
    registers: [this.registry],
  });
  readonly httpConnectionsRefused = new Counter({
    name: 'bootfarm_http_connections_refused_total',
    help: 'HTTP connections closed as soon as they were accepted, by reason (server-full: http.maxConnections open; client-full: http.maxConnectionsPerClient open from that address)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly httpConnectionsTimedOut = new Counter({
    name: 'bootfarm_http_connections_timed_out_total',
    help: 'HTTP connections closed by a deadline, by phase (request: headers or request not received within http.headersTimeoutSeconds / http.requestTimeoutSeconds; idle: a reply in progress moved no byte for http.idleTimeoutSeconds, e.g. a client that stopped reading; keep-alive: an idle connection past http.keepAliveTimeoutSeconds, normal)',
    labelNames: ['phase'] as const,
    registers: [this.registry],
  });
  readonly bootFilesRefused = new Counter({
    name: 'bootfarm_boot_files_refused_total',
    help: 'Boot-file requests (TFTP and HTTP) refused, by protocol and reason (not-boot-file: under images/ but not a kernel, initrd, DTB or Pi firmware file; root-not-admitted: a root image asked for by an address nbd.allow refuses; outside-root: resolves outside the images directory or tftp.root)',
    labelNames: ['protocol', 'reason'] as const,
    registers: [this.registry],
  });
  readonly nbdBytes = new Counter({
    name: 'bootfarm_nbd_bytes_total',
    help: 'Bytes read over NBD, by export and node',
    labelNames: ['export', 'node'] as const,
    registers: [this.registry],
  });
  readonly nbdReads = new Counter({
    name: 'bootfarm_nbd_reads_total',
    help: 'NBD read requests served, by export and node',
    labelNames: ['export', 'node'] as const,
    registers: [this.registry],
  });
  readonly nbdAttach = new Counter({
    name: 'bootfarm_nbd_attach_total',
    help: 'NBD clients that entered the transmission phase, by export and node',
    labelNames: ['export', 'node'] as const,
    registers: [this.registry],
  });
  readonly nbdProtocolErrors = new Counter({
    name: 'bootfarm_nbd_protocol_errors_total',
    help: 'NBD connections closed because the client broke the protocol',
    registers: [this.registry],
  });
  readonly nbdConnections = new Gauge({
    name: 'bootfarm_nbd_connections',
    help: 'NBD connections open now (handshake and transmission)',
    registers: [this.registry],
  });
  readonly nbdConnectionsRejected = new Counter({
    name: 'bootfarm_nbd_connections_rejected_total',
    help: 'NBD connections closed on accept, before the greeting, by reason (per-client-cap: nbd.maxConnectionsPerClient; global-cap: nbd.maxConnections; refused-cap: 64 connections of clients nbd.allow refuses)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly nbdHandshakesEnded = new Counter({
    name: 'bootfarm_nbd_handshakes_ended_total',
    help: 'NBD handshakes ended by the server, by reason (policy: refused by nbd.allow; timeout: nbd.handshakeTimeoutSeconds; too-many-options: nbd.maxHandshakeOptions)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly nbdRequestErrors = new Counter({
    name: 'bootfarm_nbd_request_errors_total',
    help: 'NBD requests answered with an error, by command and error (EPERM: write to a read-only export; EINVAL: out of range or unknown; EIO: the image could not be read)',
    labelNames: ['command', 'error'] as const,
    registers: [this.registry],
  });
  readonly nbdBufferedReadBytes = new Gauge({
    name: 'bootfarm_nbd_buffered_read_bytes',
    help: 'READ data held in memory by all NBD connections: read from the image and not yet handed to the kernel (bounded by nbd.maxBufferedReadMiB)',
    registers: [this.registry],
  });
  readonly dhcpHandleSeconds = new Histogram({
    name: 'bootfarm_dhcp_handle_seconds',
    help: 'Time from receiving a DHCP request to sending the reply, including the lease commit',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2],
    registers: [this.registry],
  });
  readonly bootsInFlight = new Gauge({
    name: 'bootfarm_boots_in_flight',
    help: 'Node boots whose agent has fetched its configuration and that have not yet joined, booted (without join) or failed',
    registers: [this.registry],
  });
  readonly bootDuration = new Histogram({
    name: 'bootfarm_boot_duration_seconds',
    help: 'From the first DHCP DISCOVER of a boot to joined, booted (without join), failed, expired or superseded',
    labelNames: ['outcome'] as const,
    buckets: [10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200],
    registers: [this.registry],
  });
  readonly tokensMinted = new Counter({
    name: 'bootfarm_bootstrap_tokens_minted_total',
    help: 'Per-node bootstrap tokens minted, by outcome (ok, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly agentAddressMismatch = new Counter({
    name: 'bootfarm_agent_address_mismatch_total',
    help: 'Agent requests for a node with an open boot session that came from another address than the one that opened it: refused',
    registers: [this.registry],
  });
  readonly agentCredentialRefused = new Counter({
    name: 'bootfarm_agent_credential_refused_total',
    help: "Boot nonces and phone-home secrets refused, by reason (missing, nonce-mismatch, nonce-replay, secret-mismatch, from-another-address, boot-over); all but missing and boot-over are alarms on the node's timeline",
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly agentReports = new Counter({
    name: 'bootfarm_agent_reports_total',
    help: 'Boot steps reported by node agents, by step and status',
    labelNames: ['step', 'status'] as const,
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'bootfarm_config_reloads_total',
    help: 'Configuration reloads (SIGHUP, bootfarm reload) by outcome: applied, or refused (the file or a template is invalid; the running configuration keeps serving)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly stateWriteErrors = new Counter({
    name: 'bootfarm_state_write_errors_total',
    help: 'State writes under server.stateDir that failed (ENOSPC, EIO...) and are retried, by operation (journal, compaction)',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly stateHealthy = new Gauge({
    name: 'bootfarm_state_healthy',
    help: '1 while state writes succeed, 0 while a failed journal or snapshot write is being retried (/healthz answers 503 then)',
    registers: [this.registry],
  });
  readonly leaseStoreHealthy = new Gauge({
    name: 'bootfarm_lease_store_healthy',
    help: 'Full DHCP mode with store.backend etcd: 1 while etcd answers claims, 0 while it cannot (no quorum, or unreachable): no new address is given then, and renewals of held addresses are ACKed only up to their claimed expiry. Absent with the file backend',
    registers: [this.registry],
  });
  readonly clockSkewSeconds = new Gauge({
    name: 'bootfarm_clock_skew_seconds',
    help: 'store.backend etcd: the largest clock skew possible between this instance and a live peer, as measured through etcd (the bound includes the reading age, up to the registry TTL)',
    registers: [this.registry],
  });
  readonly clockSkewStopped = new Gauge({
    name: 'bootfarm_clock_skew_allocation_stopped',
    help: 'store.backend etcd: 1 while clock skew stops new addresses (a peer may be beyond 60 s and this clock is not within 30 s of the etcd clock), else 0',
    registers: [this.registry],
  });
  readonly discoveredMachines = new Gauge({
    name: 'bootfarm_discovered_machines',
    help: 'Machines in no inventory that asked to boot, kept for enrolment (at most server.maxDiscovered)',
    registers: [this.registry],
  });
  readonly discoveredEvicted = new Counter({
    name: 'bootfarm_discovered_evicted_total',
    help: 'Discovered machines dropped because server.maxDiscovered was reached (the one seen longest ago goes first)',
    registers: [this.registry],
  });
  readonly tpmAttestations = new Counter({
    name: 'bootfarm_tpm_attestations_total',
    help: 'kubernetes.admission: tpm challenges answered or refused, by outcome (attested, or the refusal reason: ek-mismatch, no-ek-registered, ek-unusable, ak-malformed, ak-attributes, ak-name-mismatch, wrong-answer, no-challenge, too-many-challenges)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly apiRequests = new Counter({
    name: 'bootfarm_api_requests_total',
    help: 'HTTP API and agent requests, by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly eventStreamsCut = new Counter({
    name: 'bootfarm_event_streams_cut_total',
    help: 'Live event streams (GET /api/v1/events/stream) not served, by reason (slow: cut for falling behind, its unsent bytes past the cap; full: refused, the maximum of streams was open)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
}
