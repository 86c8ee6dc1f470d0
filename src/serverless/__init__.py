"""AWS Lambda handlers: the read API through Mangum (`src.serverless.api.handler`) and the indexer for
Lambda's DocumentDB change-stream event source (`src.serverless.indexer.handler`)."""
