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
    for (const phrase of ['Sync hook', 'kubectl argo rollouts', 'git revert', 'expand / contract', 'scaleDownDelaySeconds', 'argocd/staging/image.yaml']) {
      expect(doc, phrase).to.include(phrase);
    }
  });

  it('promotes the way the controllers keep post-promotion analysis: resume / promote without --full, never promote-full', () => {
    const section = doc.slice(doc.indexOf('## Promoting to production'), doc.indexOf('## Abort and roll back'));
    expect(section).to.match(/\*\*resume\*\*/);
    expect(section).to.include('kubectl argo rollouts -n users-service-production promote users-service ');
    expect(section).to.not.match(/promote users-service --full/);
    // promote-full appears only in the warning not to use it.
    for (const line of section.split('\n').filter((l) => /promote-full|--full/.test(l))) expect(line, line).to.match(/Do not use|skips|emergency|they set|without --full/i);
  });

  it('says abort only switches back while post-promotion analysis runs, and rolls back a full promotion by reverting the release', () => {
    const section = doc.slice(doc.indexOf('## Abort and roll back'), doc.indexOf('## Migrations'));
    expect(section).to.match(/post-promotion analysis \*\*running\*\*/);
    expect(section).to.match(/post-promotion analysis \*\*passed\*\*[^\n]*git revert/);
    expect(section).to.include('fast-tracks');
    expect(section).to.include('kubectl argo rollouts undo');
    expect(section).to.not.match(/within `?scaleDownDelaySeconds`? after promotion\)?: \*\*abort\*\*/);
  });

  it('the documented Argo CD install uses annotation tracking, and production is promoted as a unit', () => {
    expect(doc).to.include('application.resourceTrackingMethod: annotation');
    expect(doc).to.include('argocd/apps.yaml');
    expect(doc).to.include('sources[0].targetRevision');
    expect(doc).to.not.include('image-tag.yaml');
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
