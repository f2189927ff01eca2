// The `promote` job of .github/workflows/ci.yaml (delivery's part of the workflow): a release is promoted as a
// unit. Staging gets the build's tag and digest at once; production gets ONE pull request that sets the release
// file and the chart pin to the same commit; nothing for production is ever pushed to main by CI.
// Structural only: the steps use mikefarah yq v4 (preinstalled on GitHub's runners); this machine's `yq` is the
// jq wrapper of the same name, so the scripts are not executed here. test/delivery/argocd.test.ts checks the files
// they write (pin == release tag, release file from main).
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { asArr, asObj, asObjArr, readText, str } from './support.js';

const wf = asObj(parseYaml(readText('.github/workflows/ci.yaml')));
const job = asObj(asObj(wf.jobs).promote);
const steps = asObjArr(job.steps);
const step = (name: string): string => str(steps.find((s) => str(s.name).startsWith(name))?.run);

describe('CI promote job (release promotion as a unit)', () => {
  it('runs on main only, after the build job, one at a time, with the build outputs tag and digest', () => {
    expect(str(job.if)).to.equal("github.event_name == 'push' && github.ref == 'refs/heads/main'");
    expect(asArr(job.needs)).to.deep.equal(['build']);
    expect(asObj(job.concurrency)['cancel-in-progress']).to.equal(false);
    expect(asObj(job.env)).to.deep.equal({ TAG: '${{ needs.build.outputs.tag }}', DIGEST: '${{ needs.build.outputs.digest }}' });
    expect(asObj(job.permissions)).to.deep.equal({ contents: 'write', 'pull-requests': 'write' });
  });

  it('refuses outputs that are not a full commit sha and a sha256 digest', () => {
    const check = step('Check the build outputs');
    expect(check).to.include('^[0-9a-f]{40}$');
    expect(check).to.include('^sha256:[0-9a-f]{64}$');
  });

  it('staging: writes tag and digest into argocd/staging/image.yaml, never backwards, as a [skip ci] bot commit to main', () => {
    const s = step('Staging');
    expect(s).to.match(/^\s*file=argocd\/staging\/image\.yaml$/m);
    expect(s).to.include(`yq -i '.image.tag = strenv(TAG) | .image.digest = strenv(DIGEST)' "$file"`);
    expect(s).to.include('git merge-base --is-ancestor "$TAG" "$current"');
    expect(s).to.match(/git commit -m "deploy\(staging\)[^"]*\[skip ci\]"/);
    expect(s).to.include('git push origin HEAD:main');
  });

  it('production: one commit on a pull request branch sets the release file and the chart pin to the same commit', () => {
    const p = step('Production');
    expect(p).to.include(`yq -i '.image.tag = strenv(TAG) | .image.digest = strenv(DIGEST)' argocd/production/image.yaml`);
    expect(p).to.include(`yq -i '(.spec.sources[] | select(has("path"))).targetRevision = strenv(TAG)' argocd/production/application.yaml`);
    expect(p).to.match(/git commit -m "deploy\(production\)[^"]*" -- argocd\/production\/image\.yaml argocd\/production\/application\.yaml/);
    expect(p).to.include('git push --force origin "HEAD:refs/heads/$branch"');
    expect(p).to.include('gh pr create --base main --head "$branch"');
    // Production never goes to main from CI: the only push to main is staging's.
    const pushes = steps.flatMap((s) => str(s.run).split('\n')).filter((l) => /git push/.test(l));
    expect(pushes.filter((l) => l.includes('HEAD:main'))).to.have.length(1);
    expect(step('Staging')).to.not.include('argocd/production');
  });
});
