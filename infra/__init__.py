"""The AWS CDK app (Python): `cdk synth` from this folder (see README, Deploying to AWS)."""
