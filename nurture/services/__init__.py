"""Every write of the nurture domain: enrollment, the tick that runs steps, sending, exits."""
