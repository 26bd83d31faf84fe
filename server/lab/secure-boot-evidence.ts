// Whether a UEFI node ran with Secure Boot on, read from its serial console: the
// Debian kernel prints "secureboot: Secure boot enabled" (or "disabled") early in
// its boot, on amd64 and arm64 alike (Debian's efi_set_secure_boot patch), from
// what the firmware told it. The lab fails a Secure Boot kind whose console does not
// say "enabled", so a boot with Secure Boot quietly off cannot pass as one with it on.
// Pure over the console's lines.

const KERNEL_LINE = /\bSecure boot (enabled|disabled)\b/;

/** The kernel's own word on Secure Boot, from the last such line (a reboot prints it again); undefined if it said nothing. */
export function secureBootState(consoleLines: readonly string[]): 'enabled' | 'disabled' | undefined {
  for (let i = consoleLines.length - 1; i >= 0; i--) {
    const m = KERNEL_LINE.exec(consoleLines[i] as string);
    if (m) return m[1] as 'enabled' | 'disabled';
  }
  return undefined;
}

/** Why a node that must run with Secure Boot on does not pass, or undefined when its kernel said it was on. */
export function secureBootFailure(required: boolean, state: 'enabled' | 'disabled' | undefined): string | undefined {
  if (!required || state === 'enabled') return undefined;
  return state === 'disabled'
    ? 'joined, but its kernel says Secure boot disabled: the firmware did not enforce Secure Boot'
    : 'joined, but its kernel never printed "Secure boot enabled" on the console: Secure Boot is not shown to be on';
}
