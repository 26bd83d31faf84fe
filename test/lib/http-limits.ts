// The HTTP limits of an in-process HttpBootServer in unit tests that do not test
// the limits themselves (loose enough never to be what a test runs into).
export const TEST_HTTP_LIMITS = {
  maxConnections: 16,
  maxConnectionsPerClient: 8,
  headersTimeoutSeconds: 10,
  requestTimeoutSeconds: 10,
  keepAliveTimeoutSeconds: 5,
  idleTimeoutSeconds: 60,
};
