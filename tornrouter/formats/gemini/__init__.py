"""Google Gemini generateContent: an upstream wire format (see ``codec``)."""
