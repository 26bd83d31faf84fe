// An error in how bootfarm is set up (a port in use, a missing binary, a broken
// template): shown to the operator as one line, exit status 2, no stack trace.
export class SetupError extends Error {
  override readonly name = 'SetupError';
}
