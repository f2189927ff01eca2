/**
 * Single entry point so every spec shares one process and therefore one
 * synthesis of the app (about 12 s with the CloudFormation schema validation
 * and cdk-nag plugins); node --test would otherwise start a process, and a
 * synthesis, per file.
 */
import './app.spec.js';
import './config.spec.js';
import './environment.spec.js';
import './shared.spec.js';
import './iam.spec.js';
import './nag.spec.js';
import './connection-budget.spec.js';
import './monitoring.spec.js';
import './docs.spec.js';
import './suite.spec.js';
