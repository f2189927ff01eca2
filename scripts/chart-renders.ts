/**
 * The per-render describe blocks of test/chart/chart.test.ts are named after their render configuration (capture 1):
 * their checks are one behaviour each, however many renders repeat them (scripts/count-tests.ts), and
 * scripts/each-test-alone.ts runs them block by block.
 */
export const PER_RENDER = /^(Helm chart users-service (?:rollout=\S+ hpa=\S+ externalSecret=\S+ monitoring=\S+|env\/\w+\.yaml|values\.yaml defaults|reloadOnSecretChange on a Deployment with an existing Secret)) /;
