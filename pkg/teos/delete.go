package teos

import "encoding/binary"

// ExtensionDeleteAppointment names the deletion extension (POST /delete_appointment) in GET
// /info's extensions list.
const ExtensionDeleteAppointment = "delete_appointment"

// DeleteAppointmentMessage is the text a user signs to delete their appointment at loc (the
// BOLT13 draft's wording).
func DeleteAppointmentMessage(loc Locator) []byte {
	return []byte("Delete appointment " + loc.String())
}

// deletionReceiptPrefix starts every deletion receipt. Its '_' and ':' never occur in zbase32
// text, so a deletion receipt can never be read as an appointment receipt, which starts with
// the user's zbase32 signature, nor as a registration receipt, which starts with 0x02 or 0x03.
const deletionReceiptPrefix = "deletion_accepted:"

// DeletionReceiptBytes returns what the tower signs to accept a deletion:
// "deletion_accepted:" || the user's zbase32 signature text exactly as received ||
// be32(deletion_block), the height at which the tower deleted the appointment.
func DeletionReceiptBytes(userSignature string, deletionBlock uint32) []byte {
	b := make([]byte, 0, len(deletionReceiptPrefix)+len(userSignature)+4)
	b = append(b, deletionReceiptPrefix...)
	b = append(b, userSignature...)
	return binary.BigEndian.AppendUint32(b, deletionBlock)
}
