"""A Twilio Conversations simulator on loopback (tools.twilio_sim.state: TwilioSimulator)."""
