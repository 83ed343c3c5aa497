"""SAML assertion validation (signature, wrapping, times, audience) and IdP metadata files."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from signxml import methods
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from sidecar.errors import (
    ExpiredTokenException,
    FederationError,
    IDPRejectedClaim,
    InvalidIdentityToken,
)
from sidecar.identity.model import SamlProvider
from sidecar.server.saml_metadata import MetadataSource, parse_metadata, read_metadata
from sidecar.sts.federation.saml import (
    TOO_OLD,
    SamlMetadata,
    ValidatedAssertion,
    name_qualifier,
    parse_instant,
    subject_type,
    validate_assertion,
)
from tests.sts.conftest import START
from tests.sts.federation.saml_world import (
    AFFILIATION_OID,
    AUDIENCE,
    IDP_ENTITY,
    MD,
    PROVIDER,
    PROVIDER_ARN,
    RECIPIENT,
    SAML,
    SAMLP,
    SUBJECT,
    Claims,
    Idp,
    build_assertion,
    build_response,
    clone,
    encode,
    encode_text,
    find,
    make_idp,
    metadata_xml,
    response_b64,
    sign,
    write_metadata,
)
from tests.sts.world import A


@pytest.fixture(scope="module")
def idp() -> Idp:
    return make_idp()


@pytest.fixture(scope="module")
def evil() -> Idp:
    return make_idp("evil.example.com")


@pytest.fixture(scope="module")
def metadata(idp: Idp) -> SamlMetadata:
    return SamlMetadata(IDP_ENTITY, (idp.der,))


@pytest.fixture(scope="module")
def provider() -> SamlProvider:
    return SamlProvider(A, PROVIDER, PROVIDER_ARN, "/nonexistent/metadata.xml")


def check(
    b64: str, provider: SamlProvider, metadata: SamlMetadata, now: float = START
) -> ValidatedAssertion:
    return validate_assertion(b64, provider, metadata, now)


def refused(
    kind: type[FederationError],
    reason: str,
    b64: str,
    provider: SamlProvider,
    metadata: SamlMetadata,
    now: float = START,
) -> FederationError:
    with pytest.raises(FederationError) as info:
        validate_assertion(b64, provider, metadata, now)
    assert type(info.value) is kind, info.value
    assert info.value.reason == reason, info.value
    return info.value


def serialized(element: Any) -> str:
    return etree.tostring(element).decode()


class TestValidAssertions:
    def test_signed_assertion_gives_its_values(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A response whose assertion is signed by the metadata key yields the signed values."""
        claims = Claims().with_attributes(SessionDuration=["1800"])
        claims.attributes[AFFILIATION_OID] = ["staff", "member"]
        v = check(response_b64(claims, idp), provider, metadata)
        assert v.issuer == IDP_ENTITY
        assert v.subject == SUBJECT
        assert v.subject_type == "persistent"
        assert v.recipient == RECIPIENT
        assert v.audience == AUDIENCE
        assert v.attributes[AFFILIATION_OID] == ["staff", "member"]
        assert v.attributes["https://aws.amazon.com/SAML/Attributes/SessionDuration"] == ["1800"]
        assert v.not_on_or_after is None
        assert v.assertion_id == "_assertion-1"
        assert v.issue_instant == START
        assert v.name_qualifier == name_qualifier(IDP_ENTITY, A, PROVIDER)

    def test_signed_response_covers_its_assertion(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A response signed as a whole (assertion unsigned) is accepted: the signature covers the assertion."""
        v = check(response_b64(Claims(), None, sign_response=idp), provider, metadata)
        assert v.subject == SUBJECT

    def test_response_and_assertion_both_signed(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """When both the response and its assertion are signed, both signatures are verified and accepted."""
        v = check(response_b64(Claims(), idp, sign_response=idp), provider, metadata)
        assert v.subject == SUBJECT

    def test_base64_with_line_breaks(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """Base64 wrapped at 76 columns, as browsers post it, decodes."""
        b64 = response_b64(Claims(), idp)
        wrapped = "\r\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
        assert check(wrapped, provider, metadata).subject == SUBJECT

    def test_rotated_key_listed_in_metadata(
        self, idp: Idp, evil: Idp, provider: SamlProvider
    ) -> None:
        """Any signing certificate the metadata lists verifies (key rotation): the second one here."""
        both = SamlMetadata(IDP_ENTITY, (idp.der, evil.der))
        assert check(response_b64(Claims(), evil), provider, both).subject == SUBJECT

    def test_pem_certificates_in_metadata(self, idp: Idp, provider: SamlProvider) -> None:
        """A metadata certificate given as PEM works like DER."""
        from cryptography.hazmat.primitives import serialization

        pem = idp.cert.public_bytes(serialization.Encoding.PEM)
        assert (
            check(response_b64(Claims(), idp), provider, SamlMetadata(IDP_ENTITY, (pem,))).subject
            == SUBJECT
        )

    def test_session_not_on_or_after(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """AuthnStatement/@SessionNotOnOrAfter is returned as epoch seconds."""
        claims = Claims(session_not_on_or_after=START + 1200)
        assert check(response_b64(claims, idp), provider, metadata).not_on_or_after == START + 1200

    def test_leeway_accepts_small_skew(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """NotOnOrAfter 30 s in the past and NotBefore 30 s ahead pass with the 60 s leeway."""
        b64 = response_b64(Claims(issue_instant=START - 200, not_on_or_after=START - 30), idp)
        assert check(b64, provider, metadata).subject == SUBJECT
        b64 = response_b64(Claims(issue_instant=START + 20, not_before=START + 30), idp)
        assert check(b64, provider, metadata).subject == SUBJECT

    def test_custom_recipient_and_audience(self, idp: Idp, metadata: SamlMetadata) -> None:
        """A provider with its own Recipient and Audience accepts assertions made for them."""
        own = SamlProvider(
            A,
            PROVIDER,
            PROVIDER_ARN,
            "x",
            recipient="https://sidecar.local/saml",
            audience="urn:sidecar",
        )
        claims = Claims(
            recipient=own.recipient,
            destination=own.recipient,
            audiences=("urn:other", own.audience),
        )
        v = check(response_b64(claims, idp), own, metadata)
        assert (v.recipient, v.audience) == ("https://sidecar.local/saml", "urn:sidecar")


class TestHelpers:
    def test_name_qualifier_formula(self) -> None:
        """NameQualifier is base64(sha1(issuer + account + "/" + provider name)), as AWS documents."""
        expected = base64.b64encode(
            hashlib.sha1(b"https://example.com/saml123456789012/MySAMLIdP").digest()
        ).decode()
        assert name_qualifier("https://example.com/saml", "123456789012", "MySAMLIdP") == expected

    @pytest.mark.parametrize(
        ("fmt", "expected"),
        [
            ("urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "transient"),
            ("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", "persistent"),
            (
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            ),
            (None, "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
        ],
    )
    def test_subject_type(self, fmt: str | None, expected: str) -> None:
        """Only the SAML 2.0 nameid-format prefix is stripped; a missing Format is SAML's default."""
        assert subject_type(fmt) == expected

    def test_instants(self) -> None:
        """xs:dateTime values with Z, fractions (even 7 digits), offsets or no zone parse as UTC epochs."""
        assert parse_instant("2027-01-15T08:00:00Z") == START
        assert parse_instant("2027-01-15T08:00:00.1234567Z") == pytest.approx(START + 0.1234567)
        assert parse_instant("2027-01-15T09:00:00+01:00") == START
        assert parse_instant("2027-01-15T08:00:00") == START
        with pytest.raises(ValueError, match="yesterday"):
            parse_instant("yesterday")


class TestSignatureAttacks:
    def test_unsigned_assertion(self, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """A response with no signature at all is refused as unsigned."""
        refused(InvalidIdentityToken, "unsigned", response_b64(Claims(), None), provider, metadata)

    def test_signed_by_another_key(
        self, evil: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A valid signature by a key the metadata does not list is refused: Response signature invalid."""
        err = refused(
            InvalidIdentityToken, "bad_signature", response_b64(Claims(), evil), provider, metadata
        )
        assert err.message == "Response signature invalid"

    def test_response_signed_by_another_key(
        self, evil: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A response-level signature by an unknown key is refused too."""
        b64 = response_b64(Claims(), None, sign_response=evil)
        refused(InvalidIdentityToken, "bad_signature", b64, provider, metadata)

    def test_valid_assertion_with_a_bad_response_signature(
        self, idp: Idp, evil: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """Every signature present must verify, even when the assertion's own one does."""
        b64 = response_b64(Claims(), idp, sign_response=evil)
        refused(InvalidIdentityToken, "bad_signature", b64, provider, metadata)

    def test_tampered_name_id(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """Changing the NameID after signing breaks the digest."""
        r = build_response(Claims(), idp)
        find(r, "saml:Assertion/saml:Subject/saml:NameID").text = "admin@example.com"
        refused(InvalidIdentityToken, "bad_signature", encode(r), provider, metadata)

    def test_tampered_under_response_signature(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """Replacing the assertion of a signed response (assertion unsigned) breaks the response digest."""
        r = build_response(Claims(), None, sign_response=idp)
        r.replace(
            find(r, "saml:Assertion"), build_assertion(Claims(name_id="admin"), placeholder=False)
        )
        refused(InvalidIdentityToken, "bad_signature", encode(r), provider, metadata)

    def test_expired_signing_certificate(self, provider: SamlProvider) -> None:
        """A signature by a certificate that is no longer valid at the current time is refused."""
        old = make_idp(not_before=START - 400 * 86400, not_after=START - 86400)
        b64 = response_b64(Claims(), old)
        refused(
            InvalidIdentityToken,
            "bad_signature",
            b64,
            provider,
            SamlMetadata(IDP_ENTITY, (old.der,)),
        )

    def test_hmac_signature_with_the_certificate_is_refused(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """Only the metadata certificates' keys count: a KeyValue-only or HMAC signature is not accepted."""
        r = build_response(Claims(), idp)
        method = find(r, "saml:Assertion/ds:Signature/ds:SignedInfo/ds:SignatureMethod")
        method.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")
        refused(InvalidIdentityToken, "bad_signature", encode(r), provider, metadata)

    def test_sha1_signature_is_refused(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A correct RSA-SHA1 signature by the right key is refused: SHA-1 is not accepted."""

        class Sha1Signer(XMLSigner):
            def check_deprecated_methods(self) -> None:
                """Let the test make the SHA-1 signature that signxml refuses to make by default."""

        signer = Sha1Signer(
            method=methods.enveloped,
            signature_algorithm="rsa-sha1",
            digest_algorithm="sha1",
            c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
        )
        signed = signer.sign(
            build_assertion(Claims()), key=idp.key, cert=[idp.cert], reference_uri="#_assertion-1"
        )
        r = build_response(Claims(), None, assertion=signed)
        refused(InvalidIdentityToken, "bad_signature", encode(r), provider, metadata)


class TestWrapping:
    def test_injected_unsigned_assertion_before_the_signed_one(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A second, unsigned assertion placed first (where a naive reader looks) is refused as wrapped."""
        r = build_response(Claims(), idp)
        evil = build_assertion(Claims(name_id="admin", assertion_id="_evil"), placeholder=False)
        find(r, "saml:Assertion").addprevious(evil)
        refused(InvalidIdentityToken, "wrapped", encode(r), provider, metadata)

    def test_signed_assertion_moved_aside(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """The signed assertion hidden in Extensions, and a forged one carrying its signature in its place, is wrapped."""
        r = build_response(Claims(), idp)
        signed = find(r, "saml:Assertion")
        forged = clone(signed)
        find(forged, "saml:Subject/saml:NameID").text = "admin"
        forged.set("ID", "_forged")
        extensions = etree.Element(f"{{{SAMLP}}}Extensions")
        find(r, "samlp:Status").addprevious(extensions)
        r.replace(signed, forged)
        extensions.append(signed)
        refused(InvalidIdentityToken, "wrapped", encode(r), provider, metadata)

    def test_duplicated_signed_assertion(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """The signed assertion present twice (same ID) is refused as wrapped."""
        r = build_response(Claims(), idp)
        r.append(clone(find(r, "saml:Assertion")))
        refused(InvalidIdentityToken, "wrapped", encode(r), provider, metadata)

    def test_assertion_injected_into_signed_response(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """An assertion appended to a response whose signature covers only the original is wrapped."""
        r = build_response(Claims(), None, sign_response=idp)
        r.append(build_assertion(Claims(name_id="admin", assertion_id="_evil"), placeholder=False))
        refused(InvalidIdentityToken, "wrapped", encode(r), provider, metadata)

    def test_assertion_nested_away_from_the_response(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A single signed assertion that is not a child of the Response is refused as wrapped."""
        r = build_response(Claims(), idp)
        signed = find(r, "saml:Assertion")
        holder = etree.SubElement(r, f"{{{SAMLP}}}Extensions")
        holder.append(signed)
        refused(InvalidIdentityToken, "wrapped", encode(r), provider, metadata)

    def test_response_signature_moved_into_the_assertion(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A valid signature over the Response placed in the assertion does not sign the assertion: wrapped."""
        r = build_response(Claims(), None, sign_response=idp)
        signature = find(r, "ds:Signature")
        assertion = find(r, "saml:Assertion")
        find(assertion, "saml:Issuer").addnext(signature)
        refused(InvalidIdentityToken, "wrapped", encode(r), provider, metadata)

    def test_signature_in_an_unexpected_place(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A signature anywhere but under the Response or the Assertion is refused as wrapped."""
        r = build_response(Claims(), idp)
        subject = find(r, "saml:Assertion/saml:Subject")
        subject.append(clone(find(r, "saml:Assertion/ds:Signature")))
        refused(InvalidIdentityToken, "wrapped", encode(r), provider, metadata)

    def test_comment_inside_name_id(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A comment spliced into a signed NameID (which c14n ignores, so the signature still holds) is refused."""
        r = build_response(Claims(name_id="alice@example.com.evil.com"), idp)
        xml = serialized(r).replace(
            ">alice@example.com.evil.com<", ">alice@example.com<!---->.evil.com<"
        )
        # The signature still verifies (c14n drops comments), and a naive reader of the raw
        # document would see only "alice@example.com".
        when = dt.datetime.fromtimestamp(START, tz=dt.UTC)
        config = SignatureConfiguration(location=f"./{{{SAML}}}Assertion/", verification_time=when)
        XMLVerifier().verify(xml.encode(), x509_cert=idp.cert, expect_config=config)
        assert find(etree.fromstring(xml.encode()), ".//saml:NameID").text == "alice@example.com"
        refused(InvalidIdentityToken, "malformed", encode_text(xml), provider, metadata)

    def test_processing_instruction_inside_assertion(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A processing instruction inside the assertion is refused like a comment."""
        r = build_response(Claims(), idp)
        xml = serialized(r).replace(f">{SUBJECT}<", f">{SUBJECT}<?x y?><")
        refused(InvalidIdentityToken, "malformed", encode_text(xml), provider, metadata)

    def test_more_than_one_subject_confirmation(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """AWS requires exactly one bearer SubjectConfirmation; two are refused."""
        a = build_assertion(Claims())
        conf = find(a, "saml:Subject/saml:SubjectConfirmation")
        conf.addnext(clone(conf))
        r = build_response(Claims(), None, assertion=sign(a, idp))
        refused(InvalidIdentityToken, "malformed", encode(r), provider, metadata)

    def test_encrypted_assertion_is_not_supported(
        self, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """An EncryptedAssertion is refused (no decryption key is configured)."""
        r = build_response(Claims(), None)
        r.replace(find(r, "saml:Assertion"), etree.Element(f"{{{SAML}}}EncryptedAssertion"))
        refused(InvalidIdentityToken, "malformed", encode(r), provider, metadata)


class TestTimes:
    def test_replayed_old_assertion(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """An assertion issued 10 minutes ago (still inside its own NotOnOrAfter) is too old to redeem."""
        claims = Claims(
            issue_instant=START - 600, not_on_or_after=START + 600, scd_not_on_or_after=START + 600
        )
        err = refused(
            ExpiredTokenException, "too_old", response_b64(claims, idp), provider, metadata
        )
        assert err.message == TOO_OLD == "Token must be redeemed within 5 minutes of issuance"

    def test_expired_conditions(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """Conditions/@NotOnOrAfter past the leeway is refused as expired."""
        claims = Claims(issue_instant=START - 240, not_on_or_after=START - 120)
        refused(ExpiredTokenException, "expired", response_b64(claims, idp), provider, metadata)

    def test_expired_subject_confirmation(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """SubjectConfirmationData/@NotOnOrAfter past the leeway is refused as expired."""
        claims = Claims(issue_instant=START - 240, scd_not_on_or_after=START - 61)
        refused(ExpiredTokenException, "expired", response_b64(claims, idp), provider, metadata)

    def test_session_already_ended(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A SessionNotOnOrAfter already past is refused as expired."""
        claims = Claims(session_not_on_or_after=START)
        refused(ExpiredTokenException, "expired", response_b64(claims, idp), provider, metadata)

    def test_not_yet_valid(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """Conditions/@NotBefore beyond the leeway is refused as not yet valid."""
        claims = Claims(not_before=START + 300)
        refused(
            InvalidIdentityToken, "not_yet_valid", response_b64(claims, idp), provider, metadata
        )

    def test_issued_in_the_future(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """An IssueInstant beyond the leeway in the future is refused as not yet valid."""
        claims = Claims(issue_instant=START + 120, not_before=START)
        refused(
            InvalidIdentityToken, "not_yet_valid", response_b64(claims, idp), provider, metadata
        )

    def test_bad_instant(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """An IssueInstant that is not an xs:dateTime is malformed."""
        a = build_assertion(Claims())
        a.set("IssueInstant", "soon")
        r = build_response(Claims(), None, assertion=sign(a, idp))
        refused(InvalidIdentityToken, "malformed", encode(r), provider, metadata)


class TestAddressing:
    def test_wrong_recipient(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """An assertion made for another service provider's endpoint is refused."""
        claims = Claims(recipient="https://sp.example.org/acs", destination=None)
        refused(
            InvalidIdentityToken, "wrong_recipient", response_b64(claims, idp), provider, metadata
        )

    def test_wrong_destination(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A response whose Destination is another endpoint is refused."""
        claims = Claims(destination="https://sp.example.org/acs")
        refused(
            InvalidIdentityToken, "wrong_recipient", response_b64(claims, idp), provider, metadata
        )

    def test_wrong_audience(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """An AudienceRestriction without the provider's audience is refused."""
        claims = Claims(audiences=("urn:some:other:sp",))
        refused(
            InvalidIdentityToken, "wrong_audience", response_b64(claims, idp), provider, metadata
        )

    def test_no_audience(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """An assertion with no AudienceRestriction is refused: the audience is required."""
        a = build_assertion(Claims())
        conditions = find(a, "saml:Conditions")
        conditions.remove(find(conditions, "saml:AudienceRestriction"))
        r = build_response(Claims(), None, assertion=sign(a, idp))
        refused(InvalidIdentityToken, "wrong_audience", encode(r), provider, metadata)

    def test_wrong_issuer(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """An assertion signed by the right key but naming another Issuer is refused."""
        claims = Claims(issuer="https://other-idp.example.com", response_issuer=None)
        refused(InvalidIdentityToken, "wrong_issuer", response_b64(claims, idp), provider, metadata)

    def test_wrong_response_issuer(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """A Response Issuer that differs from the metadata entity id is refused."""
        claims = Claims(response_issuer="https://other-idp.example.com")
        refused(InvalidIdentityToken, "wrong_issuer", response_b64(claims, idp), provider, metadata)

    def test_idp_reported_failure(self, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """A response whose Status is not Success is the IdP rejecting the claim."""
        claims = Claims(status="urn:oasis:names:tc:SAML:2.0:status:Responder")
        refused(IDPRejectedClaim, "idp_rejected", response_b64(claims, None), provider, metadata)


class TestInput:
    def test_oversized(self, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """More than 100,000 characters is refused before decoding."""
        refused(InvalidIdentityToken, "too_large", "A" * 100_004, provider, metadata)

    @pytest.mark.parametrize("text", ["!!!!not base64!!!!", "abc", "QUJD", "////"])
    def test_garbage(self, text: str, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """Text that is not base64 of an XML document is malformed."""
        refused(InvalidIdentityToken, "malformed", text, provider, metadata)

    def test_not_well_formed(self, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """Broken XML is malformed."""
        refused(
            InvalidIdentityToken,
            "malformed",
            encode_text("<samlp:Response><unclosed>"),
            provider,
            metadata,
        )

    def test_not_a_response(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """A bare signed Assertion (not inside a samlp:Response) is malformed."""
        refused(
            InvalidIdentityToken,
            "malformed",
            encode(sign(build_assertion(Claims()), idp)),
            provider,
            metadata,
        )

    def test_billion_laughs(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """A DOCTYPE with nested entities (billion laughs) is refused before any expansion."""
        entities = '<!ENTITY lol "lol">' + "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
            for i in range(1, 10)
        )
        body = serialized(build_response(Claims(), idp)).replace(f">{SUBJECT}<", ">&lol9;<")
        xml = f'<?xml version="1.0"?><!DOCTYPE samlp:Response [{entities}]>{body}'
        err = refused(InvalidIdentityToken, "malformed", encode_text(xml), provider, metadata)
        assert "DTD" in err.message

    def test_external_entity(
        self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata
    ) -> None:
        """An external entity (XXE) is refused."""
        body = serialized(build_response(Claims(), idp)).replace(f">{SUBJECT}<", ">&xxe;<")
        xml = f'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>{body}'
        refused(InvalidIdentityToken, "malformed", encode_text(xml), provider, metadata)

    def test_smaller_limit(self, idp: Idp, provider: SamlProvider, metadata: SamlMetadata) -> None:
        """The size limit is a parameter."""
        with pytest.raises(InvalidIdentityToken) as info:
            validate_assertion(
                response_b64(Claims(), idp), provider, metadata, START, max_chars=1000
            )
        assert info.value.reason == "too_large"


class TestMetadata:
    def test_parse(self, idp: Idp, evil: Idp) -> None:
        """Entity id and every signing certificate (use="signing" or no use) are read; encryption keys are not."""
        root = etree.fromstring(metadata_xml(IDP_ENTITY, [idp.cert]))
        sso = root.find(f"{{{MD}}}IDPSSODescriptor")
        for use, cert in (("encryption", evil.cert), (None, evil.cert)):
            extra = etree.fromstring(metadata_xml(IDP_ENTITY, [cert], use=use)).find(
                f"{{{MD}}}IDPSSODescriptor/{{{MD}}}KeyDescriptor"
            )
            sso.insert(0, extra)
        md = parse_metadata(etree.tostring(root))
        assert md.entity_id == IDP_ENTITY
        assert md.certificates == (evil.der, idp.der)

    def test_entities_descriptor_with_one_idp(self, idp: Idp) -> None:
        """An EntitiesDescriptor holding exactly one IdP is accepted."""
        wrapper = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD})
        wrapper.append(etree.fromstring(metadata_xml(IDP_ENTITY, [idp.cert])))
        assert parse_metadata(etree.tostring(wrapper)).entity_id == IDP_ENTITY

    @pytest.mark.parametrize(
        "xml",
        [
            b"not xml",
            b'<!DOCTYPE x [<!ENTITY a "b">]><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e">&a;</md:EntityDescriptor>',
            b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>',
            b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e"/>',
            b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e"><md:IDPSSODescriptor/></md:EntityDescriptor>',
            b"<other/>",
        ],
    )
    def test_bad_metadata(self, xml: bytes) -> None:
        """Unreadable metadata (not XML, a DTD, no entity id, no IdP, no signing certificate) is refused with reason metadata."""
        with pytest.raises(InvalidIdentityToken) as info:
            parse_metadata(xml, "idp.xml")
        assert info.value.reason == "metadata"
        assert "idp.xml" in info.value.message

    def test_certificate_that_does_not_parse(self, idp: Idp) -> None:
        """A signing certificate that is not a certificate is refused."""
        xml = metadata_xml(IDP_ENTITY, [idp.cert]).replace(
            base64.b64encode(idp.der), base64.b64encode(b"junk")
        )
        with pytest.raises(InvalidIdentityToken) as info:
            parse_metadata(xml)
        assert info.value.reason == "metadata"

    def test_missing_file(self, tmp_path: Path, provider: SamlProvider) -> None:
        """A metadata file that does not exist is refused with reason metadata."""
        with pytest.raises(InvalidIdentityToken) as info:
            MetadataSource().get(
                dataclasses.replace(provider, metadata_file=str(tmp_path / "none.xml"))
            )
        assert info.value.reason == "metadata"
        with pytest.raises(InvalidIdentityToken):
            read_metadata(tmp_path / "none.xml")

    def test_cached_until_the_file_changes(
        self, tmp_path: Path, idp: Idp, evil: Idp, provider: SamlProvider
    ) -> None:
        """The file is parsed once, and again only when its modification time changes (a rotated key)."""
        path = write_metadata(tmp_path / "idp.xml", IDP_ENTITY, [idp.cert])
        p = dataclasses.replace(provider, metadata_file=str(path))
        source = MetadataSource()
        first = source.get(p)
        assert source.get(p) is first
        assert source.reads == 1
        write_metadata(path, IDP_ENTITY, [evil.cert])
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        assert source.get(p).certificates == (evil.der,)
        assert source.reads == 2

    def test_broken_file_is_not_served_stale(
        self, tmp_path: Path, idp: Idp, provider: SamlProvider
    ) -> None:
        """After the file turns bad, lookups fail rather than use the old cached copy."""
        path = write_metadata(tmp_path / "idp.xml", IDP_ENTITY, [idp.cert])
        p = dataclasses.replace(provider, metadata_file=str(path))
        source = MetadataSource()
        source.get(p)
        path.write_bytes(b"<broken")
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        with pytest.raises(InvalidIdentityToken) as info:
            source.get(p)
        assert info.value.reason == "metadata"

    def test_metadata_file_verifies_real_responses(
        self, tmp_path: Path, idp: Idp, provider: SamlProvider
    ) -> None:
        """Metadata read from a file verifies a response signed by the IdP it describes."""
        path = write_metadata(tmp_path / "idp.xml", IDP_ENTITY, [idp.cert])
        md = MetadataSource().get(dataclasses.replace(provider, metadata_file=str(path)))
        assert check(response_b64(Claims(), idp), provider, md).subject == SUBJECT
