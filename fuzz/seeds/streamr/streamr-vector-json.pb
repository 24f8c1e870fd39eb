
H
streamr.eth/foo/bar•ÔŸÂÏ1*~_ER	i]]ü·¸Âe)9[ß2401zi3b84sd64qn31fteóÂ›ÂÏ1Aå0E­ïN÷şÔ³<`Sh‰äÛç€Á‰ÍŒ’4WáöËÁä}œÕ~Zú¸RBˆˆwwÁmc‹<®-Ú *
{"foo":"bar"}