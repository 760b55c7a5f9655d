"""AWS Bedrock Converse: an upstream wire format (see ``codec``)."""
