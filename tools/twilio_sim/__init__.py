"""A Twilio Conversations simulator on loopback: the REST subset Redeliver uses, over real HTTP.

The retry worker's real twilio-python client talks to it (set TWILIO_CONVERSATIONS_URL to `url`),
so tests exercise Twilio's wire format (form-encoded creates, JSON answers, paging, error bodies)
and not a mock of our own wrapper. It answers as Twilio's OpenAPI description says
(`../shared/oai/twilio_conversations_v1.json`; checked by tests/integration/test_twilio_sim.py):
every schema property present (null when unset, its default when the schema allows no null),
none outside it, dates as `YYYY-MM-DDTHH:MM:SSZ` (the only form twilio-python parses), absolute
`url`s and `links` under https://conversations.twilio.com, real paging (`PageSize`,
`next_page_url` with a `PageToken`). The client is pointed here by rewriting that host (see
ConversationsGateway), so the URLs Twilio would send back are followed as they would be.

Endpoints, each in the service-scoped form and the short form. The short form reaches only the
account's default Conversation Service (`chat_service_sid`): a conversation of another service is
404 20404 there, as on Twilio.

    GET  /v1/[Services/{IS}/]Conversations/{CH}/Messages/{IM}           fetch a message
    POST /v1/[Services/{IS}/]Conversations/{CH}/Messages                 create (Author, Body,
         Attributes, MediaSid, ContentSid, ContentVariables; header X-Twilio-Webhook-Enabled)
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Messages                 list (Order, PageSize)
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Participants             list participants
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Participants/{MB}        fetch a participant
    POST /v1/[Services/{IS}/]Conversations/{CH}/Participants             add one (Identity, or
         MessagingBinding.Address + .ProxyAddress: 409 50416 when that pair already sits in
         another conversation of the service)
    POST /v1/[Services/{IS}/]Conversations                               create (UniqueName,
         FriendlyName, Attributes: 409 50353 when the UniqueName is taken in the service)
    GET  /v1/[Services/{IS}/]Conversations/{CH or UniqueName}            fetch a conversation
    GET  /v1/[Services/{IS}/]ParticipantConversations?Address=|Identity= where one takes part
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Messages/{IM}/Receipts   list delivery receipts
    GET  /v1/Services                                                    list the account's
         Conversation Services (PageSize)
    GET  /v1/Services/{IS}/Configuration/Webhooks                        a service's webhooks
    POST /v1/Services/{IS}/Configuration/Webhooks                        update (Filters whole)
    GET  /v1/Configuration/Webhooks                                      the account's global ones

Faults (scripted, or drawn at random for creates) answer as Twilio fails: tools.twilio_sim.faults.

The rooms, each importing only those above it:
    wire           Twilio's wire format: answers, dates, errors, absolute URLs, paging
    faults         the faults to come, scripted or drawn, and what each leaves behind
    state          what the account holds (Account), in Twilio's resource shapes
    conversations  the endpoints of each resource, over the account's state
    participants
    messages       (and a message's Receipts)
    webhooks       a service's webhook configuration
    services       the account's Conversation Services
    routes         which resource answers a path
    server         the HTTP listener on loopback, and its refusals
    simulator      TwilioSimulator: the account served, faults applied; `running`
"""
