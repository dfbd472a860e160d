import type { Rule } from '../rules/model.js';

export type BackendName = 'iptables-legacy' | 'iptables-nft' | 'nftables';

/** One change, and how to undo it if a later change fails. */
export interface Step {
  describe: string;
  apply(): Promise<void>;
  rollback(): Promise<void>;
}

export interface Plan {
  backend: BackendName;
  /** exactly what will be fed to the tools, for --dry-run and --verbose */
  scripts: { label: string; text: string }[];
  steps: Step[];
  /** after applying: undefined when the installed state is what was planned, else what differs */
  verify(): Promise<string | undefined>;
}

export interface Backend {
  name: BackendName;
  /** the tools exist (and work in this namespace) */
  available(): Promise<boolean>;
  /** any rule or chain at all, detour's or anyone's (for auto-detection) */
  hasAnyRules(): Promise<boolean>;
  hasDetourState(): Promise<boolean>;
  /** the installed state records that install added ::6 to lo */
  recordsAddedLoopback(): Promise<boolean>;
  planInstall(rules: Rule[], ipv6: boolean): Promise<Plan>;
  planRemove(): Promise<Plan>;
}
