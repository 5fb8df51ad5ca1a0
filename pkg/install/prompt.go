package install

import (
	"errors"
	"os"

	"github.com/AlecAivazis/survey/v2"
	"github.com/AlecAivazis/survey/v2/terminal"
)

// TerminalPrompt asks on a terminal with survey.
type TerminalPrompt struct {
	In       *os.File
	Out, Err *os.File
}

func (p TerminalPrompt) opts(extra ...survey.AskOpt) []survey.AskOpt {
	return append(extra, survey.WithStdio(p.In, p.Out, p.Err))
}

// Input implements Prompter.
func (p TerminalPrompt) Input(message, def, help string, validate func(string) error) (string, error) {
	var ans string
	err := survey.AskOne(&survey.Input{Message: message, Default: def, Help: help}, &ans,
		p.opts(survey.WithValidator(func(v any) error {
			s, _ := v.(string)
			return validate(s)
		}))...)
	return ans, mapInterrupt(err)
}

// Confirm implements Prompter.
func (p TerminalPrompt) Confirm(message string, def bool) (bool, error) {
	var ok bool
	err := survey.AskOne(&survey.Confirm{Message: message, Default: def}, &ok, p.opts()...)
	return ok, mapInterrupt(err)
}

func mapInterrupt(err error) error {
	if errors.Is(err, terminal.InterruptErr) {
		return ErrAborted
	}
	return err
}
