"""The bell's live side: the WebSocket consumer and the Server-Sent Events stream (protocol v1,
docs/inapp-protocol.md). Both join the user's channel-layer group that the in-app provider
publishes to, and both count as presence while connected."""
