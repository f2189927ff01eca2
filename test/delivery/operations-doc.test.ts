// docs/operations.md: a runbook section for every alert, at the anchor its runbook_url points to, and every
// relative link (file and #anchor) in the document resolves.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { asObj, asObjArr, readText, readYaml, repoPath } from './support.js';

/** GitHub's heading anchor: lower case, punctuation except '-' and '_' dropped, spaces to '-'; repeats get -1, -2. */
export function githubAnchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .replace(/`/g, '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${String(n)}`);
  }
  return out;
}

const DOC = 'docs/operations.md';
const doc = readText(DOC);
const anchors = githubAnchors(doc);
const rules = asObjArr(asObj(readYaml('chart/users-service/files/prometheus-rules.yaml')).groups).flatMap((g) => asObjArr(g.rules));
const alerts = rules.filter((r) => typeof r.alert === 'string');

describe('docs/operations.md', () => {
  it('has a section for each alert, exactly where its runbook_url points', () => {
    const names = [...new Set(alerts.map((a) => String(a.alert)))];
    expect(names).to.have.members([
      'UsersServiceErrorBudgetBurn',
      'UsersServiceDown',
      'UsersServiceHighLatency',
      'UsersServiceDBPoolSaturated',
      'UsersServiceDBPoolPendingAcquires',
      'UsersServiceEventLoopLag',
      'UsersServiceRateLimitSurge',
      'UsersServiceRateLimiterDegraded',
      'UsersServiceAuthKeysUnavailable',
      'UsersServiceAuthFailuresHigh',
    ]);
    for (const a of alerts) {
      const url = new URL(String(asObj(a.annotations).runbook_url));
      expect(url.pathname.endsWith(`/${DOC}`), String(a.alert)).to.equal(true);
      expect(anchors, `${String(a.alert)} -> ${url.hash}`).to.include(url.hash.slice(1));
      expect(doc, String(a.alert)).to.include(`### ${String(a.alert)}\n`);
    }
  });

  it('each alert section says what it means, what to check first and how to mitigate', () => {
    const sections = doc.split(/^### /m).slice(1);
    for (const name of new Set(alerts.map((a) => String(a.alert)))) {
      const s = sections.find((x) => x.startsWith(`${name}\n`));
      expect(s, name).to.not.equal(undefined);
      for (const part of ['**Means:**', '**First checks**', '**Mitigate**']) expect(s, `${name} ${part}`).to.include(part);
    }
  });

  it('covers the release flow, promotion, abort and rollback, migrations, the ALB and RDS CA caveats', () => {
    for (const heading of ['release-flow', 'promoting-to-production', 'abort-and-roll-back', 'migrations-order-and-compatibility', 'bluegreen-on-eks-not-behind-an-alb', 'tls-to-rds-the-ca-bundle']) {
      expect(anchors, heading).to.include(heading);
    }
    for (const phrase of ['PreSync', 'promote-full', 'kubectl argo rollouts', 'git revert', 'expand / contract', 'scaleDownDelaySeconds', 'argocd/staging/image-tag.yaml']) {
      expect(doc, phrase).to.include(phrase);
    }
  });

  it('every relative link resolves to a file, and every #anchor to a heading in that file', () => {
    const links = [...doc.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/i.test(l));
    expect(links.length).to.be.at.least(5);
    for (const link of links) {
      const [file, anchor] = link.split('#') as [string, string | undefined];
      const target = file === '' ? repoPath(DOC) : path.resolve(path.dirname(repoPath(DOC)), file);
      expect(existsSync(target), link).to.equal(true);
      if (anchor !== undefined) expect(githubAnchors(readText(path.relative(repoPath(), target))), link).to.include(anchor);
    }
  });

  it('the anchor function matches GitHub on this repository\'s headings (self-test)', () => {
    const a = githubAnchors('# Blue/green on EKS: not behind an AWS ALB\n### 4.1 Point-in-time restore (in region): x, y\n## A\n## A\n');
    expect([...a]).to.deep.equal(['bluegreen-on-eks-not-behind-an-aws-alb', '41-point-in-time-restore-in-region-x-y', 'a', 'a-1']);
  });
});
