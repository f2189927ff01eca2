/**
 * PostgreSQL connection capacity per RDS instance class: what the parameter
 * group sets as max_connections, and the share of it the service's pods may
 * use. The connection-budget test reads this together with the chart values.
 */

/** Memory of each RDS instance class this service may run on (AWS instance-class table, GiB). */
export const RDS_CLASS_MEMORY_GIB: Readonly<Record<string, number>> = {
  't4g.micro': 1,
  't4g.small': 2,
  't4g.medium': 4,
  't4g.large': 8,
  't4g.xlarge': 16,
  'm7g.large': 8,
  'm7g.xlarge': 16,
  'm7g.2xlarge': 32,
  'r7g.large': 16,
  'r7g.xlarge': 32,
};

/** RDS's default is LEAST(DBInstanceClassMemory/9531392, 5000): one connection per ~9.1 MiB. */
const BYTES_PER_CONNECTION = 9_531_392;
const MAX_CONNECTIONS_CAP = 5_000;

/**
 * DBInstanceClassMemory is the class memory minus what the OS and RDS keep
 * (AWS does not publish it; observed defaults imply roughly 300-400 MiB). Taking
 * 512 MiB off keeps the value we set at or below the RDS default for every
 * class, so setting it explicitly never gives PostgreSQL more memory per
 * connection than RDS would.
 */
const RESERVED_BYTES = 512 * 1024 * 1024;

/** Share of max_connections the pods may hold at most; the rest is for the migration Job, the rotation functions, superuser slots and operators. */
export const POOL_SHARE_OF_MAX_CONNECTIONS = 0.8;

function classMemoryBytes(instanceType: string): number {
  const gib = RDS_CLASS_MEMORY_GIB[instanceType];
  if (gib === undefined) {
    throw new Error(`unknown RDS instance class ${instanceType}: add its memory to RDS_CLASS_MEMORY_GIB (infra/lib/capacity.ts)`);
  }
  return gib * 1024 ** 3;
}

/** The max_connections the parameter group sets for this class. */
export function maxConnections(instanceType: string): number {
  return Math.min(Math.floor((classMemoryBytes(instanceType) - RESERVED_BYTES) / BYTES_PER_CONNECTION), MAX_CONNECTIONS_CAP);
}

/** Connections all pods together may open: 80 % of max_connections. */
export function connectionBudget(instanceType: string): number {
  return Math.floor(maxConnections(instanceType) * POOL_SHARE_OF_MAX_CONNECTIONS);
}

/** T classes run on CPU credits. */
export function isBurstable(instanceType: string): boolean {
  return /^t\d/.test(instanceType);
}
