// Moved to server/lab/ (the emulation lab uses it too); kept so test imports stay short.
export * from '../../server/lab/netlab.js';
