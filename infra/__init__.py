"""The AWS CDK app (Python): `cdk synth` from this folder (see docs/deploying.md, Deploying to AWS)."""
