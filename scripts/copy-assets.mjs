// tsc only emits JavaScript; the OpenAPI contract is read at run time next to the code.
import { copyFileSync } from 'node:fs';

copyFileSync('service/openapi/openapi.yaml', 'dist/service/openapi/openapi.yaml');
